# expect: runtime PluginRuntimeError
# map() with the setattr builtin: C calls setattr(json, 'dumps', len), refused by the write guard
# ruff: noqa
import json


def process_event(event, meta):
    return list(map(setattr, [json], ["dumps"], [len]))
