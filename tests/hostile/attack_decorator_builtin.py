# expect: runtime PluginRuntimeError
# a decorator returning a builtin: the export is not a plugin function
# ruff: noqa
@len
def process_event(event, meta):
    return event
