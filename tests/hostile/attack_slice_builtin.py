# expect: runtime PluginRuntimeError
# slice objects are not a builtin (slice stores are guarded)
# ruff: noqa
def process_event(event, meta):
    return slice(0, None)
