# expect: runtime PluginResourceError
# 'x'.ljust(10**10)
# ruff: noqa
def process_event(event, meta):
    return "x".ljust(10**10)
