# expect: runtime PluginResourceError
# zip, filter and enumerate nest in C the same way
# ruff: noqa
def process_event(event, meta):
    m = [1]
    for i in range(1_000_000):
        if i % 3 == 0:
            m = zip(m)
        elif i % 3 == 1:
            m = filter(None, m)
        else:
            m = enumerate(m)
    return next(m)
