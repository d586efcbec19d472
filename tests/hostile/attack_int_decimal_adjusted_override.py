# expect: runtime PluginResourceError
# isinstance type confusion: a Decimal subclass whose adjusted() lies to the int() digit guard
# ruff: noqa
import decimal


class Tiny(decimal.Decimal):
    def adjusted(self):
        return 0


def process_event(event, meta):
    return int(Tiny("1e1000000000")) > 0
