# expect: runtime PluginResourceError
# amplifying replace in a loop
# ruff: noqa
def process_event(event, meta):
    s = "a" * 1000
    while True:
        s = s.replace("a", "aaaa")
