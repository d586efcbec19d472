# expect: runtime PluginResourceError
# [0] * 10**10
# ruff: noqa
def process_event(event, meta):
    return [0] * 10**10
