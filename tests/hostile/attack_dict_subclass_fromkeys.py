# expect: runtime PluginResourceError
# fromkeys through a plugin's dict subclass
# ruff: noqa
class D(dict):
    pass


def process_event(event, meta):
    return len(D.fromkeys(range(10_000_000), 0))
