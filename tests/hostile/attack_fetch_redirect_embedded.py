# expect: runtime PluginRuntimeError
# a public server that redirects to an IPv4-mapped private address (::ffff:10.0.0.1): every hop is checked again; tests/unit/plugins/test_fetch.py runs this with a real meta.fetch, a stub resolver and a transport that records: refused before any request to it
# ruff: noqa
def process_event(event, meta):
    return meta.fetch("http://public.example/redirect?to=http://[::ffff:10.0.0.1]/")
