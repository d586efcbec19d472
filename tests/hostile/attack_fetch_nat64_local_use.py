# expect: runtime PluginRuntimeError
# reach a private address through the local-use NAT64 prefix (64:ff9b:1::/48, RFC 8215), which Python's ipaddress calls global; tests/unit/plugins/test_fetch.py runs this with a real meta.fetch, a stub resolver and a transport that records: refused before any request
# ruff: noqa
def process_event(event, meta):
    return meta.fetch("http://[64:ff9b:1::a00:1]/")
