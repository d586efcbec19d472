# expect: runtime PluginTimeout
# for x in itertools.count(): pass
# ruff: noqa
import itertools


def process_event(event, meta):
    for x in itertools.count():
        pass
