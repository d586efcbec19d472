# expect: runtime PluginRuntimeError
# CVE-2024-47532: the read-only module raises a fresh AttributeError, and .obj is refused
# ruff: noqa
import random


def process_event(event, meta):
    try:
        random.nothing_here
    except AttributeError as e:
        return getattr(e, "obj")
