# expect: runtime PluginRuntimeError
# returning a function
# ruff: noqa
def process_event(event, meta):
    return process_event
