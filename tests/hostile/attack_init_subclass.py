# expect: compile
# __init_subclass__ hook in a plugin class
# ruff: noqa
class Base:
    def __init_subclass__(cls):
        pass


def process_event(event, meta):
    return event
