# expect: runtime PluginResourceError
# returning a result above the size limit
# ruff: noqa
def process_event(event, meta):
    event["properties"]["big"] = "x" * 9_000_000
    return event
