# expect: runtime PluginRuntimeError
# str(bytes, 'idna'): a pure-Python codec through the str constructor
# ruff: noqa
def process_event(event, meta):
    return len(str(b"xn--" + b"a" * 5_000_000, "punycode"))
