# expect: runtime PluginResourceError
# bytearray(10**10)
# ruff: noqa
def process_event(event, meta):
    return bytearray(10**10)
