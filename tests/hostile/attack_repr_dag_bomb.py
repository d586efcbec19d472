# expect: runtime PluginResourceError
# str() of a self-similar structure (2**40 leaves)
# ruff: noqa
def process_event(event, meta):
    a = [1]
    for i in range(40):
        a = [a, a]
    return str(a)
