# expect: runtime PluginRuntimeError
# with meta: MetaError
# meta.cache.lpop takes int() of its count on the host: a Decimal of 10**9 digits is converted in
# one C call holding the GIL (the sandbox's own int() refuses it; the host's did not)
# ruff: noqa
import decimal


def process_event(event, meta):
    meta.cache.lpop("k", decimal.Decimal("1e1000000000"))
    return event
