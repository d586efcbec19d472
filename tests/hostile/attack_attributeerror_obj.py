# expect: runtime PluginRuntimeError
# CVE-2024-47532: AttributeError.obj hands back the object whose attribute failed
# ruff: noqa
import json


def process_event(event, meta):
    try:
        json.codecs
    except AttributeError as e:
        return e.obj
