# expect: runtime PluginResourceError
# urllib.parse is pure Python with no tick: parse_qs of a 10 MB query runs ~5 s past the deadline
# ruff: noqa
import urllib.parse


def process_event(event, meta):
    return len(urllib.parse.parse_qsl("a=1&" * 2_500_000))
