# expect: runtime PluginRuntimeError
# random.SystemRandom / random._os
# ruff: noqa
import random


def process_event(event, meta):
    return random.SystemRandom
