# expect: runtime PluginResourceError
# the same through an f-string field, with a tiny exponent: f"{d:f}" is "0.000...1"
# ruff: noqa
import decimal
import time


def process_event(event, meta):
    d = decimal.Decimal("1e-300000000")
    started = time.monotonic()
    try:
        f"{d:f}"
    except BaseException:
        pass
    if time.monotonic() - started > 0.2:
        return "held the GIL"
    return f"{d:f}"
