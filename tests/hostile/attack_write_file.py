# expect: runtime PluginRuntimeError
# open() for writing a file
# ruff: noqa
def process_event(event, meta):
    with open("pwned.txt", "w") as f:
        f.write("x")
