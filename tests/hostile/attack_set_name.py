# expect: compile
# __set_name__ hook
# ruff: noqa
class Desc:
    def __set_name__(self, owner, name):
        pass


def process_event(event, meta):
    return event
