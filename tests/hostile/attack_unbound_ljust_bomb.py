# expect: runtime PluginResourceError
# str.ljust('x', 10**10) through the type
# ruff: noqa
def process_event(event, meta):
    return str.ljust("x", 10**10)
