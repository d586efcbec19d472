# expect: runtime PluginResourceError
# isinstance type confusion: %-formatting with a dict subclass whose values() hides a huge argument
# ruff: noqa
class Hidden(dict):
    def values(self):
        return []


def process_event(event, meta):
    a = [1]
    for i in range(40):
        a = [a, a]
    return len("%(x)s" % Hidden(x=a))
