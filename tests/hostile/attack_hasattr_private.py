# expect: runtime PluginRuntimeError
# hasattr on a private name
# ruff: noqa
def process_event(event, meta):
    return hasattr(event, "__class__")
