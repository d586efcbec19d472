# expect: runtime PluginTimeout
# a pathological regex is fast with RE2, then the plugin loops
# ruff: noqa
import re


def process_event(event, meta):
    for i in range(1000):
        re.match("(a+)+$", "a" * 50 + "b")
    while True:
        pass
