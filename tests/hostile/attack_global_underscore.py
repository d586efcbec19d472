# expect: compile
# global _getattr_ then rebinding it
# ruff: noqa
def process_event(event, meta):
    global _getattr_
    _getattr_ = getattr
    return event
