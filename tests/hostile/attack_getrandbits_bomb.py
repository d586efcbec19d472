# expect: runtime PluginResourceError
# random.getrandbits(10**10)
# ruff: noqa
import random


def process_event(event, meta):
    return random.getrandbits(10**10)
