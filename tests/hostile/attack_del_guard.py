# expect: compile
# del _getattr_
# ruff: noqa
def process_event(event, meta):
    del _getattr_
    return event
