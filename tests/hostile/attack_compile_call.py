# expect: runtime PluginRuntimeError
# compile()
# ruff: noqa
def process_event(event, meta):
    return compile("1", "x", "eval")
