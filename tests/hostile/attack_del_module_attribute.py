# expect: runtime PluginRuntimeError
# del json.dumps
# ruff: noqa
import json


def process_event(event, meta):
    del json.dumps
    return event
