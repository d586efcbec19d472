# expect: runtime PluginRuntimeError
# reach loopback through an SIIT IPv4-translated IPv6 literal (::ffff:0:127.0.0.1), which Python's ipaddress calls global; tests/unit/plugins/test_fetch.py runs this with a real meta.fetch, a stub resolver and a transport that records: refused before any request
# ruff: noqa
def process_event(event, meta):
    return meta.fetch("http://[::ffff:0:127.0.0.1]/")
