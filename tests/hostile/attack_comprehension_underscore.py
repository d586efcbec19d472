# expect: compile
# comprehension variable named _getattr_
# ruff: noqa
def process_event(event, meta):
    return [_getattr_ for _getattr_ in [getattr]]
