# expect: runtime PluginResourceError
# 1 << 10**10
# ruff: noqa
def process_event(event, meta):
    return 1 << 10**10
