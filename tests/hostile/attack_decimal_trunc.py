# expect: runtime PluginResourceError
# math.trunc() of a huge Decimal
# ruff: noqa
import decimal
import math


def process_event(event, meta):
    return math.trunc(decimal.Decimal("1e1000000000")) > 0
