# expect: compile
# a plugin class defining __getattr__
# ruff: noqa
class Proxy:
    def __getattr__(self, name):
        return name


def process_event(event, meta):
    return event
