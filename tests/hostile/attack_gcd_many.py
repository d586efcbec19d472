# expect: runtime PluginResourceError
# math.gcd of a million 65536-bit ints (each within every other bound): one C call of many seconds
# ruff: noqa
import math
import random


def process_event(event, meta):
    x = random.getrandbits(65_000) * 2 + 1
    return math.gcd(*[x] * 1_000_000) > 0
