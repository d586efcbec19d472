# expect: runtime PluginRuntimeError
# retry a meta call that met a service outage in a loop until the service answers; tests/unit/plugins/test_outage.py runs this with a failing store: the abort is sticky, the next tick raises it again and the store is asked only once
# ruff: noqa
def process_event(event, meta):
    for attempt in range(3):
        try:
            return meta.storage.get("seen") or event
        except:
            continue
    raise ValueError("gave up")
