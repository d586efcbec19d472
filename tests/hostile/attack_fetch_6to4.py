# expect: runtime PluginRuntimeError
# reach the cloud metadata service through a 6to4 address embedding 169.254.169.254 (2002:a9fe:a9fe::/48), which Python's ipaddress calls global; tests/unit/plugins/test_fetch.py runs this with a real meta.fetch, a stub resolver and a transport that records: refused before any request
# ruff: noqa
def process_event(event, meta):
    return meta.fetch("http://[2002:a9fe:a9fe::1]/latest/meta-data/")
