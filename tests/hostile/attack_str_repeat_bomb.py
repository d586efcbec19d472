# expect: runtime PluginResourceError
# 'x' * 10**10
# ruff: noqa
def process_event(event, meta):
    return "x" * 10**10
