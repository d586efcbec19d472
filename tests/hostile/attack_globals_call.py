# expect: runtime PluginRuntimeError
# globals()
# ruff: noqa
def process_event(event, meta):
    return globals()
