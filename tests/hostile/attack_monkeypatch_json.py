# expect: runtime PluginRuntimeError
# json.dumps = evil must not change anyone's json
# ruff: noqa
import json


def process_event(event, meta):
    json.dumps = lambda obj: "pwned"
    return event
