# expect: runtime PluginRuntimeError
# dict.get = evil on a handed-in type
# ruff: noqa
def process_event(event, meta):
    dict.get = len
    return event
