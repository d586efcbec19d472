# expect: runtime PluginResourceError
# an int base is made a Decimal of its every digit: (10**5000) ** Decimal("0.5") through pow()
# ruff: noqa
import decimal


def process_event(event, meta):
    return str(pow(7**6000, decimal.Decimal("0.5")))
