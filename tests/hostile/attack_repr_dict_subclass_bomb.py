# expect: runtime PluginResourceError
# isinstance type confusion: a dict subclass whose keys()/values() hide a self-similar structure from the size estimate
# ruff: noqa
class Hidden(dict):
    def keys(self):
        return []

    def values(self):
        return []


def process_event(event, meta):
    a = [1]
    for i in range(40):
        a = [a, a]
    return len(str(Hidden(x=a)))
