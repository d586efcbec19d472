# expect: runtime PluginRuntimeError
# with meta: returns
# meta.logger.info(*parts) with a thousand 10 MB parts: the host joins 10 GB before cutting it
# ruff: noqa
def process_event(event, meta):
    part = "x" * 10_000_000
    meta.logger.info(*[part] * 1000)
    return event
