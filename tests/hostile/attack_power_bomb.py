# expect: runtime PluginResourceError
# 10**10**10
# ruff: noqa
def process_event(event, meta):
    return 10**10**10
