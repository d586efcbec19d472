# expect: runtime PluginRuntimeError
# a name with a public IPv4 address and a NAT64 one embedding the metadata service: every address is checked, not only the first; tests/unit/plugins/test_fetch.py runs this with a real meta.fetch, a stub resolver and a transport that records: refused before any request
# ruff: noqa
def process_event(event, meta):
    return meta.fetch("http://mixed.attacker.test/")
