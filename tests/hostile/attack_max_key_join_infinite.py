# expect: runtime PluginResourceError
# max() with key= a bound "".join over an infinite iterator: the join guard materializes at most MAX_ITEMS
# ruff: noqa
import itertools


def process_event(event, meta):
    return max([itertools.repeat("x")], key="".join)
