# expect: runtime PluginRuntimeError
# hasattr(x, '__class__'): refused, not answered
# ruff: noqa
def process_event(event, meta):
    return hasattr(event, "__class__")
