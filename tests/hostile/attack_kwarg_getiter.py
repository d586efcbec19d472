# expect: compile
# **kwargs named _getiter_
# ruff: noqa
def process_event(event, meta, **_getiter_):
    return event
