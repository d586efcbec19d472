# expect: runtime PluginRuntimeError
# type(x)
# ruff: noqa
def process_event(event, meta):
    return type(event)
