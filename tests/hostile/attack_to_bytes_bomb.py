# expect: runtime PluginResourceError
# (1).to_bytes(10**10, 'big')
# ruff: noqa
def process_event(event, meta):
    return (1).to_bytes(10**10, "big")
