# expect: runtime PluginRuntimeError
# setattr(json, 'dumps', x)
# ruff: noqa
import json


def process_event(event, meta):
    setattr(json, "dumps", len)
    return event
