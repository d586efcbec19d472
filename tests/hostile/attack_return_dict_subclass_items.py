# expect: runtime PluginRuntimeError
# a returned dict subclass whose items()/keys() would hide an int key and loop: the host copies with dict.items
# ruff: noqa
class Clean(dict):
    def items(self):
        while True:
            pass

    def keys(self):
        while True:
            pass

    def values(self):
        while True:
            pass


def process_event(event, meta):
    result = Clean(a=1)
    result[1] = 2
    return result
