# expect: runtime PluginResourceError
# isinstance type confusion: a str subclass whose count() lies to the expandtabs() size guard
# ruff: noqa
class Liar(str):
    def count(self, sub, *args):
        return 0


def process_event(event, meta):
    return len(Liar("\t" * 1000000).expandtabs(100000))
