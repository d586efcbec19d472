# expect: runtime PluginRuntimeError
# json.codecs: module internals are not attributes of the wrapper
# ruff: noqa
import json


def process_event(event, meta):
    return json.codecs.sys
