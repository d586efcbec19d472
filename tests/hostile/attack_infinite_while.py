# expect: runtime PluginTimeout
# while True: pass
# ruff: noqa
def process_event(event, meta):
    while True:
        pass
