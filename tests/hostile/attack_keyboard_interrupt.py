# expect: runtime PluginRuntimeError
# raise KeyboardInterrupt from plugin code (not a builtin of plugins)
# ruff: noqa
def process_event(event, meta):
    raise KeyboardInterrupt
