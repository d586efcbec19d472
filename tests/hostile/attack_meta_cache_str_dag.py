# expect: runtime PluginRuntimeError
# with meta: MetaError
# meta.cache.set(json_serialize=False) takes str() of the value on the host: repr expands the DAG
# ruff: noqa
def process_event(event, meta):
    value = []
    for _ in range(40):
        value = [value, value]
    meta.cache.set("k", value, json_serialize=False)
    return event
