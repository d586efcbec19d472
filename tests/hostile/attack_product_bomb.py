# expect: runtime PluginResourceError
# itertools.product(range(10), repeat=10**9)
# ruff: noqa
import itertools


def process_event(event, meta):
    return itertools.product(range(10), repeat=10**9)
