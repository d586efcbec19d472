# expect: runtime PluginResourceError
# a.extend(a) in a loop
# ruff: noqa
def process_event(event, meta):
    a = [0]
    while True:
        a.extend(a)
