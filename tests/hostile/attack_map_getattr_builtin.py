# expect: runtime PluginRuntimeError
# map() with the getattr builtin: C calls getattr(json, '__loader__'), which is the guarded one
# ruff: noqa
import json


def process_event(event, meta):
    return list(map(getattr, [json, json], ["dumps", chr(95) * 2 + "loader" + chr(95) * 2]))
