# expect: runtime PluginRuntimeError
# a dict key that is a str subclass
# ruff: noqa
class Key(str):
    pass


def process_event(event, meta):
    return {Key("a"): 1}
