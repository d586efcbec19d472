# expect: runtime PluginRuntimeError
# collections.abc
# ruff: noqa
import collections


def process_event(event, meta):
    return collections.abc
