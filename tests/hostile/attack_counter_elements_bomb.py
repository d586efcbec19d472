# expect: runtime PluginTimeout
# Counter.elements() repeats in C: all() over it
# ruff: noqa
import collections


def process_event(event, meta):
    c = collections.Counter()
    c["a"] = 10**18
    return all(c.elements())
