# expect: runtime PluginRuntimeError
# with meta: MetaError
# meta.storage.set of a self-similar structure (shared references, no cycle): the host's json.dumps
# expands it to 2**40 items in one C call, holding the GIL. With a meta, the refusal is a MetaError.
# ruff: noqa
def process_event(event, meta):
    value = []
    for _ in range(40):
        value = [value, value]
    meta.storage.set("k", value)
    return event
