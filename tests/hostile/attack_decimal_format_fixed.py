# expect: runtime PluginResourceError
# format(Decimal, 'f') writes every digit of 1e300000000: a C call holding the GIL for about a second
# and 300 MB before the size check refuses the result. The plugin times it: returning means it held.
# ruff: noqa
import decimal
import time


def process_event(event, meta):
    d = decimal.Decimal("1e300000000")
    started = time.monotonic()
    try:
        format(d, "f")
    except BaseException:
        pass
    if time.monotonic() - started > 0.2:
        return "held the GIL"
    return format(d, "f")
