# expect: runtime PluginRuntimeError
# urllib.parse.quote(s, encoding='punycode'): the codec reached through urllib's encoding argument
# ruff: noqa
import urllib.parse


def process_event(event, meta):
    text = "".join(chr(0x4E00 + i % 20000) for i in range(200_000))
    return len(urllib.parse.quote(text, encoding="punycode"))
