# expect: runtime PluginRuntimeError
# raise StopIteration out of a plugin function: an ordinary error at the call boundary
# ruff: noqa
def process_event(event, meta):
    raise StopIteration("done")
