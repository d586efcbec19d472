# expect: compile
# *args named _getitem_
# ruff: noqa
def process_event(event, meta, *_getitem_):
    return event
