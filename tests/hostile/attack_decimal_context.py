# expect: runtime PluginRuntimeError
# decimal.getcontext() is per thread and shared with the host
# ruff: noqa
import decimal


def process_event(event, meta):
    decimal.getcontext().prec = 10**9
