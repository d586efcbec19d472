# expect: runtime PluginRuntimeError
# reach a deprecated site-local IPv6 address (fec0::/10), which Python's ipaddress calls global; tests/unit/plugins/test_fetch.py runs this with a real meta.fetch, a stub resolver and a transport that records: refused before any request
# ruff: noqa
def process_event(event, meta):
    return meta.fetch("http://[fec0::1]/")
