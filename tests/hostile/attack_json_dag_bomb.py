# expect: runtime PluginResourceError
# json.dumps of a self-similar structure
# ruff: noqa
import json


def process_event(event, meta):
    a = {"k": 1}
    for i in range(40):
        a = {"l": a, "r": a}
    return json.dumps(a)
