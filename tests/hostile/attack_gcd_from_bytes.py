# expect: runtime PluginResourceError
# math.gcd of 40-million-bit ints built by int.from_bytes: one C call of hours, holding the GIL
# ruff: noqa
import math
import random


def process_event(event, meta):
    a = int.from_bytes(random.randbytes(5_000_000), "big")
    b = int.from_bytes(random.randbytes(5_000_000), "big")
    return math.gcd(a, b) > 0
