# expect: runtime PluginResourceError
# isinstance type confusion: a dict subclass whose values() hides the replacement sizes from translate()
# ruff: noqa
class Table(dict):
    def values(self):
        return []


def process_event(event, meta):
    return len(("a" * 1000000).translate(Table({97: "b" * 100000})))
