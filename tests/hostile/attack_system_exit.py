# expect: runtime PluginRuntimeError
# raise SystemExit from a worker thread
# ruff: noqa
def process_event(event, meta):
    raise SystemExit(1)
