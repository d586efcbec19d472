# expect: runtime PluginRuntimeError
# reach loopback through an inet_aton shorthand the resolver expands (0x7f.1 is 127.0.0.1); tests/unit/plugins/test_fetch.py runs this with a real meta.fetch, a stub resolver and a transport that records: refused before any request
# ruff: noqa
def process_event(event, meta):
    return meta.fetch("http://0x7f.1/")
