# expect: runtime PluginResourceError
# s = f'{s}{s}' in a loop
# ruff: noqa
def process_event(event, meta):
    s = "x"
    while True:
        s = f"{s}{s}"
