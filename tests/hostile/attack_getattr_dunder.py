# expect: runtime PluginRuntimeError
# getattr(x, '__class__')
# ruff: noqa
def process_event(event, meta):
    return getattr(event, "__class__")
