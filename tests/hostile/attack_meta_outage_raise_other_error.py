# expect: runtime PluginRuntimeError
# turn a service outage met in meta into an ordinary plugin error (catch the abort, raise ValueError), so the event would continue without the plugin's work instead of the batch being retried; tests/unit/plugins/test_outage.py runs this with a failing store
# ruff: noqa
def process_event(event, meta):
    try:
        meta.storage.get("seen")
    except BaseException:
        raise ValueError("only a plugin error")
