# expect: compile
# class body assigning _getattr_
# ruff: noqa
class Evil:
    _getattr_ = getattr


def process_event(event, meta):
    return event
