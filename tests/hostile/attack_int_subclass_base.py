# expect: runtime PluginResourceError
# a plugin int subclass's constructor is the real int's: int(s, 16) through it
# ruff: noqa
class I(int):
    pass


def process_event(event, meta):
    return I("f" * 10_000_000, 16) % I("e" * 5_000_000, 16) > 0
