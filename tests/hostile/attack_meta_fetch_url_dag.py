# expect: runtime PluginRuntimeError
# with meta: MetaError
# meta.fetch takes str() of its url (and method, headers) on the host: a self-similar structure
# as the url expands there in one C call, before any address is checked
# ruff: noqa
def process_event(event, meta):
    value = []
    for _ in range(40):
        value = [value, value]
    meta.fetch(value)
    return event
