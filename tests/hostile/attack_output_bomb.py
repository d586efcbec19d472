# expect: runtime PluginTimeout
# print huge strings forever (output capped, then the deadline)
# ruff: noqa
def process_event(event, meta):
    line = "x" * 100000
    while True:
        print(line)
