# expect: runtime PluginRuntimeError
# reach loopback Redis through an IPv4-mapped IPv6 literal (::ffff:127.0.0.1): a dual-stack socket sends it to 127.0.0.1; tests/unit/plugins/test_fetch.py runs this with a real meta.fetch, a stub resolver and a transport that records: refused before any request
# ruff: noqa
def process_event(event, meta):
    return meta.fetch("http://[::ffff:127.0.0.1]:6379/")
