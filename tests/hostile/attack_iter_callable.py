# expect: runtime PluginRuntimeError
# iter(callable, sentinel) loops in C
# ruff: noqa
def process_event(event, meta):
    return list(iter(int, 1))
