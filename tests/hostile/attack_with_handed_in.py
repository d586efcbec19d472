# expect: runtime PluginRuntimeError
# with on a handed-in object
# ruff: noqa
import json


def process_event(event, meta):
    with json:
        pass
