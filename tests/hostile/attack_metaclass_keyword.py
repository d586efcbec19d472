# expect: compile
# class with metaclass=
# ruff: noqa
class Meta:
    pass


class Evil(metaclass=Meta):
    pass


def process_event(event, meta):
    return event
