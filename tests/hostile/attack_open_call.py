# expect: runtime PluginRuntimeError
# open()
# ruff: noqa
def process_event(event, meta):
    return open("/etc/passwd").read()
