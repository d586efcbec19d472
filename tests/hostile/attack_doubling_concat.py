# expect: runtime PluginResourceError
# s = s + s in a loop
# ruff: noqa
def process_event(event, meta):
    s = "x"
    while True:
        s = s + s
