# expect: runtime PluginRuntimeError
# reach loopback through a deprecated IPv4-compatible IPv6 literal (::127.0.0.1), which Python's ipaddress calls global; tests/unit/plugins/test_fetch.py runs this with a real meta.fetch, a stub resolver and a transport that records: refused before any request
# ruff: noqa
def process_event(event, meta):
    return meta.fetch("http://[::127.0.0.1]/")
