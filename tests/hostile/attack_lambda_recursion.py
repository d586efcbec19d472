# expect: runtime PluginResourceError
# recursion through a lambda (Python's own limit, translated)
# ruff: noqa
f = lambda n: f(n + 1)


def process_event(event, meta):
    return f(0)
