# expect: runtime PluginRuntimeError
# CVE-2023-41039: str.format taken from the type
# ruff: noqa
def process_event(event, meta):
    fmt = str.format
    return fmt("{0.__class__}", event)
