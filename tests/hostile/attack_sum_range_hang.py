# expect: runtime PluginResourceError
# sum(range(10**18)) would run for centuries in C
# ruff: noqa
def process_event(event, meta):
    return sum(range(10**18))
