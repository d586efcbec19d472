# expect: runtime PluginRuntimeError
# reach loopback through a Teredo address whose obfuscated client is 127.0.0.1 (2001::/32, server 65.54.227.120); tests/unit/plugins/test_fetch.py runs this with a real meta.fetch, a stub resolver and a transport that records: refused before any request
# ruff: noqa
def process_event(event, meta):
    return meta.fetch("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/")
