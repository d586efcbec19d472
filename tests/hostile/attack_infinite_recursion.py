# expect: runtime PluginResourceError
# infinite recursion
# ruff: noqa
def f(n):
    return f(n + 1)


def process_event(event, meta):
    return f(0)
