# expect: runtime PluginTimeout
# an infinite loop in module code
# ruff: noqa
while True:
    pass


def process_event(event, meta):
    return event
