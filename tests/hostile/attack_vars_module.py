# expect: runtime PluginRuntimeError
# vars(json)
# ruff: noqa
import json


def process_event(event, meta):
    return vars(json)
