# expect: runtime PluginRuntimeError
# locals()
# ruff: noqa
def process_event(event, meta):
    return locals()
