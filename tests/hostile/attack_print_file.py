# expect: runtime PluginRuntimeError
# print(file=...) to write somewhere else
# ruff: noqa
def process_event(event, meta):
    print("x", file=event)
