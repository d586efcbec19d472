# expect: runtime PluginRuntimeError
# a name the attacker controls whose only address is a 6to4 form of the cloud metadata service (2002:a9fe:a9fe::); tests/unit/plugins/test_fetch.py runs this with a real meta.fetch, a stub resolver and a transport that records: refused before any request
# ruff: noqa
def process_event(event, meta):
    return meta.fetch("http://metadata-6to4.attacker.test/latest/meta-data/")
