# expect: runtime PluginRuntimeError
# swallow a service outage met in meta (a bare except catches even the sandbox's abort) and carry on writing through meta as if the plugin's work were done; tests/unit/plugins/test_outage.py runs this with a failing store: the call fails as retryable and nothing is written after the outage
# ruff: noqa
def process_event(event, meta):
    try:
        meta.storage.get("seen")
    except:
        pass
    meta.cache.set("after", 1)
    meta.storage.set("after", 1)
    return event
