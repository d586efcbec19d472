# expect: runtime PluginRuntimeError
# a plugin str subclass's constructor takes an encoding too
# ruff: noqa
class S(str):
    pass


def process_event(event, meta):
    return len(S(b"a" * 1_000_000 + b"-" + b"9" * 1_000_000, "punycode"))
