# expect: runtime PluginRuntimeError
# browser-use/browser-use#4679: builtins wrapped in host Python functions leak their module through __globals__
# ruff: noqa
def process_event(event, meta):
    name = chr(95) * 2 + "globals" + chr(95) * 2
    host = getattr(sorted, name)
    return host["builtins"].open("/etc/passwd").read()
