# expect: runtime PluginRuntimeError
# bytes.decode through a pure-Python codec, given by keyword
# ruff: noqa
def process_event(event, meta):
    return len((b"a" * 1_000_000 + b"-" + b"9" * 1_000_000).decode(encoding="punycode", errors="ignore"))
