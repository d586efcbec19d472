# expect: compile
# __class_getitem__ hook
# ruff: noqa
class Box:
    def __class_getitem__(cls, item):
        return item


def process_event(event, meta):
    return event
