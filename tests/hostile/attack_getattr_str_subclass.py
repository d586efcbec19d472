# expect: runtime PluginRuntimeError
# getattr with a str subclass name pretending not to start with _
# ruff: noqa
class Name(str):
    def startswith(self, prefix):
        return False


def process_event(event, meta):
    return getattr(event, Name("__class__"))
