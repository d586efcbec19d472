# expect: runtime PluginRuntimeError
# int() of a huge decimal string (CPython's digit limit)
# ruff: noqa
def process_event(event, meta):
    return int("9" * 100000)
