# expect: runtime PluginRuntimeError
# with meta: MetaError
# meta.cache.lpush serializes each element on the host
# ruff: noqa
def process_event(event, meta):
    value = []
    for _ in range(40):
        value = [value, value]
    meta.cache.lpush("k", [value])
    return event
