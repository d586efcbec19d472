# expect: runtime PluginResourceError
# '%d' % Decimal converts it to an int in C
# ruff: noqa
import decimal


def process_event(event, meta):
    return len("%d" % decimal.Decimal("1e1000000000"))
