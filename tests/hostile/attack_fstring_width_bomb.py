# expect: runtime PluginResourceError
# f'{1:>{10**10}}'
# ruff: noqa
def process_event(event, meta):
    width = 10**10
    return f"{1:>{width}}"
