# expect: runtime PluginResourceError
# math.lcm of many large coprime-ish ints: the result grows past any size in one C call
# ruff: noqa
import math


def process_event(event, meta):
    x = 2**60000
    return math.lcm(*[x + 2 * i + 1 for i in range(5000)]) > 0
