# expect: compile
# nonlocal
# ruff: noqa
def process_event(event, meta):
    x = 1

    def inner():
        nonlocal x
        x = 2

    inner()
    return event
