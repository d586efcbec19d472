# expect: runtime PluginResourceError
# returning a self-similar structure
# ruff: noqa
def process_event(event, meta):
    a = ["x"]
    for i in range(40):
        a = [a, a]
    event["properties"]["bomb"] = a
    return event
