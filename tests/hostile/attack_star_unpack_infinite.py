# expect: runtime PluginTimeout
# star-unpacking an infinite iterator
# ruff: noqa
import itertools


def process_event(event, meta):
    a, *rest = itertools.count()
