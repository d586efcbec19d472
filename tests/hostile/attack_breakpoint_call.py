# expect: compile
# breakpoint()
# ruff: noqa
def process_event(event, meta):
    breakpoint()
