# expect: runtime PluginResourceError
# urllib.parse.urlencode of a million pairs: seconds of pure Python with no tick
# ruff: noqa
import urllib.parse


def process_event(event, meta):
    return len(urllib.parse.urlencode({"a": list(range(1_000_000))}, doseq=True))
