# expect: runtime PluginRuntimeError
# str.format through super() bound to the class (a classmethod): super(S, S).format is str.format
# ruff: noqa
class S(str):
    @classmethod
    def fmt(cls):
        return super().format


def process_event(event, meta):
    return S.fmt()("{0.__class__}", event)
