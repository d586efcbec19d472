# expect: runtime PluginTimeout
# sorted() with key= a bound method that never returns: C sort calls plugin code, which still ticks
# ruff: noqa
class Slow:
    def key(self, item):
        while True:
            pass


def process_event(event, meta):
    return sorted(range(10), key=Slow().key)
