# expect: runtime PluginRuntimeError
# returning a class instance with __eq__ (never compared by the host)
# ruff: noqa
class Sneaky:
    def __eq__(self, other):
        while True:
            pass


def process_event(event, meta):
    return {"x": Sneaky()}
