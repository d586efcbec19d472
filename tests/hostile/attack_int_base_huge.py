# expect: runtime PluginResourceError
# int(s, 16) of 10-million-digit strings: huge ints in one C call, then a quadratic division of hours
# ruff: noqa
def process_event(event, meta):
    a = int("f" * 10_000_000, 16)
    b = int("e" * 5_000_000, 16)
    return a % b > 0
