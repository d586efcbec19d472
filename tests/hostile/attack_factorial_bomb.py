# expect: runtime PluginResourceError
# math.factorial(10**8) runs for minutes in C
# ruff: noqa
import math


def process_event(event, meta):
    return math.factorial(10**8)
