# expect: runtime PluginResourceError
# math.floor() of a Decimal with 10**9 digits before the point
# ruff: noqa
import decimal
import math


def process_event(event, meta):
    return math.floor(decimal.Decimal("1e1000000000")) > 0
