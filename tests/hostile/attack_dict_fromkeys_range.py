# expect: runtime PluginResourceError
# dict.fromkeys over ten million keys in one C call, past the item limit of every other constructor
# ruff: noqa
def process_event(event, meta):
    return len(dict.fromkeys(range(10_000_000)))
