# expect: runtime PluginRuntimeError
# with meta: MetaError
# meta.storage.set of a list nested 100000 deep: the host's json.dumps recurses in C
# ruff: noqa
def process_event(event, meta):
    value = []
    for _ in range(100_000):
        value = [value]
    meta.storage.set("k", value)
    return event
