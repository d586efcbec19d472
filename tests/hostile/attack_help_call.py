# expect: runtime PluginRuntimeError
# help()
# ruff: noqa
def process_event(event, meta):
    help(event)
