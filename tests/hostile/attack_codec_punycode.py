# expect: runtime PluginRuntimeError
# the punycode codec is pure Python and quadratic: no tick, its thread runs on past the deadline
# ruff: noqa
def process_event(event, meta):
    text = "".join(chr(0x4E00 + i % 20000) for i in range(200_000))
    return len(text.encode("punycode"))
