# expect: runtime PluginRuntimeError
# with meta: MetaError
# meta.logger.info of a self-similar structure: the logger's json.dumps expands it on the host
# ruff: noqa
def process_event(event, meta):
    value = []
    for _ in range(40):
        value = [value, value]
    meta.logger.info("look", value)
    return event
