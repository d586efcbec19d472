# expect: runtime PluginResourceError
# map nested a million deep, then next(): C recursion through map_next overflows the C stack (SIGSEGV)
# ruff: noqa
def process_event(event, meta):
    m = [1]
    for _ in range(1_000_000):
        m = map(abs, m)
    return next(m)
