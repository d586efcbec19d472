# expect: runtime PluginResourceError
# round() of a Decimal with 10**9 digits before the point: a huge int conversion in C
# ruff: noqa
import decimal


def process_event(event, meta):
    return round(decimal.Decimal("1e1000000000")) > 0
