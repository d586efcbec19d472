# expect: runtime PluginRuntimeError
# input()
# ruff: noqa
def process_event(event, meta):
    return input()
