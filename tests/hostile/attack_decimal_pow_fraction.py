# expect: runtime PluginResourceError
# a fractional power of a 10000-digit Decimal: one C call of ~15 s (and hours at 100000 digits)
# ruff: noqa
import decimal


def process_event(event, meta):
    base = decimal.Decimal("1." + "1" * 10_000)
    return str(base ** decimal.Decimal("-0.5"))
