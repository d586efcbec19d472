# expect: runtime PluginRuntimeError
# write an item into a module wrapper
# ruff: noqa
import json


def process_event(event, meta):
    json["dumps"] = len
