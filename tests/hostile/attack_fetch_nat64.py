# expect: runtime PluginRuntimeError
# reach the cloud metadata service through the NAT64 well-known prefix (64:ff9b::169.254.169.254), which Python's ipaddress calls global; tests/unit/plugins/test_fetch.py runs this with a real meta.fetch, a stub resolver and a transport that records: refused before any request
# ruff: noqa
def process_event(event, meta):
    return meta.fetch("http://[64:ff9b::169.254.169.254]/latest/meta-data/")
