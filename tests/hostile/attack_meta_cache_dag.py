# expect: runtime PluginRuntimeError
# with meta: MetaError
# meta.cache.set of a self-similar dict: json.dumps on the host expands it
# ruff: noqa
def process_event(event, meta):
    value = {}
    for _ in range(40):
        value = {"a": value, "b": value}
    meta.cache.set("k", value)
    return event
