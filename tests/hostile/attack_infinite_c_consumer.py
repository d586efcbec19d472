# expect: runtime PluginTimeout
# C code draining an infinite iterator: any(itertools.repeat(0))
# ruff: noqa
import itertools


def process_event(event, meta):
    return any(itertools.repeat(0))
