# expect: runtime PluginResourceError
# a += a in a loop
# ruff: noqa
def process_event(event, meta):
    a = [0]
    while True:
        a += a
