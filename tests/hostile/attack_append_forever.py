# expect: runtime PluginTimeout
# a loop appending to a list forever (bounded by the deadline and the watchdog)
# ruff: noqa
def process_event(event, meta):
    a = []
    while True:
        a.append(1)
