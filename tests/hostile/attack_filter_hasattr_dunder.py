# expect: runtime PluginRuntimeError
# filter() with hasattr probing private names from C
# ruff: noqa
import json


def process_event(event, meta):
    return list(filter(lambda name: hasattr(json, name), ["dumps", chr(95) + "os"]))
