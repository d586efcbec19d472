# expect: runtime PluginRuntimeError
# a generator that swallows GeneratorExit on close() and keeps yielding
# ruff: noqa
def stubborn():
    while True:
        try:
            yield 1
        except BaseException:
            pass


def process_event(event, meta):
    g = stubborn()
    next(g)
    g.close()
