# expect: runtime PluginRuntimeError
# raise GeneratorExit from plugin code (not a builtin of plugins)
# ruff: noqa
def process_event(event, meta):
    raise GeneratorExit
