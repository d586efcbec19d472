# expect: runtime PluginRuntimeError
# drop the abort of a service outage met in meta with a return in a finally block (no except clause, no tick after it) and hand back data as if the work were done; tests/unit/plugins/test_outage.py runs this with a failing store
# ruff: noqa
def process_event(event, meta):
    try:
        meta.storage.get("seen")
    finally:
        return meta.config
