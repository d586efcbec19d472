# expect: runtime PluginResourceError
# a[len(a):] = a in a loop
# ruff: noqa
def process_event(event, meta):
    a = [0]
    while True:
        a[len(a) :] = a
