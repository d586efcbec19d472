# expect: runtime PluginRuntimeError
# datetime.sys
# ruff: noqa
import datetime


def process_event(event, meta):
    return datetime.sys
