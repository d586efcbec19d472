# expect: runtime PluginResourceError
# a huge regular expression
# ruff: noqa
import re


def process_event(event, meta):
    return re.compile("a" * 100000)
