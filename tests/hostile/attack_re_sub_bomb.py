# expect: runtime PluginResourceError
# re.sub amplifying on every position
# ruff: noqa
import re


def process_event(event, meta):
    return re.sub("", "x" * 1000, "y" * 100000)
