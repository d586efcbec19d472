# expect: runtime PluginResourceError
# the power guard asked `type(a) is int`: a plugin's int subclass skipped it (10**10**9 in C)
# ruff: noqa
class I(int):
    pass


def process_event(event, meta):
    return I(10) ** (10**9) > 0
