# expect: runtime PluginRuntimeError
# a suspended generator kept in a global: its finally runs whenever it is collected, on a host thread
# ruff: noqa
KEEP = []


def lurker():
    try:
        yield 1
    finally:
        while True:
            try:
                pass
            except BaseException:
                pass


def process_event(event, meta):
    g = lurker()
    next(g)
    KEEP.append(g)
    raise ValueError("leave the generator for the host to collect")
