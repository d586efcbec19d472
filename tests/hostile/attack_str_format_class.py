# expect: runtime PluginRuntimeError
# CVE-2023-41039: str.format field access '{0.__class__}'
# ruff: noqa
def process_event(event, meta):
    return "{0.__class__.__base__.__subclasses__}".format(event)
