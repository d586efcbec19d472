# expect: runtime PluginResourceError
# isinstance type confusion: a str subclass whose count() lies to the replace() size guard
# ruff: noqa
class Liar(str):
    def count(self, sub, *args):
        return 0


def process_event(event, meta):
    s = Liar("a" * 1000000)
    return len(s.replace("a", "b" * 100000))
