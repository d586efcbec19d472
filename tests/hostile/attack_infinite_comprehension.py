# expect: runtime PluginTimeout
# a comprehension over an infinite iterator
# ruff: noqa
import itertools


def process_event(event, meta):
    return [x for x in itertools.cycle([1]) if x > 1]
