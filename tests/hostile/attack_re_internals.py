# expect: runtime PluginRuntimeError
# re.functools / re._compile
# ruff: noqa
import re


def process_event(event, meta):
    return re.functools
