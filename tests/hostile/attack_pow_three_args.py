# expect: runtime PluginResourceError
# pow(a, b, m) with 65536-bit b and m: one modular exponentiation of hours in C, holding the GIL
# ruff: noqa
def process_event(event, meta):
    big = 2**65000 + 1
    return pow(3, big, big + 2) > 0
