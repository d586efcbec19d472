# expect: runtime PluginRuntimeError
# CVE-2023-41039: format_map with attribute fields
# ruff: noqa
def process_event(event, meta):
    return "{e.__class__}".format_map({"e": event})
