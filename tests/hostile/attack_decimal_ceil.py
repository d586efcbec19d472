# expect: runtime PluginResourceError
# math.ceil() of a huge Decimal
# ruff: noqa
import decimal
import math


def process_event(event, meta):
    return math.ceil(decimal.Decimal("1e1000000000")) > 0
