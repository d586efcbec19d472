# expect: runtime PluginResourceError
# list(range(10**10))
# ruff: noqa
def process_event(event, meta):
    return list(range(10**10))
