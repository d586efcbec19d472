# expect: runtime PluginResourceError
# Decimal.as_integer_ratio() of a huge Decimal: a huge int in C
# ruff: noqa
import decimal


def process_event(event, meta):
    return decimal.Decimal("1e1000000000").as_integer_ratio()[0] > 0
