# expect: runtime PluginRuntimeError
# str.format through super(): the guard asked whether the owner is a str, and a super() proxy is not
# ruff: noqa
class S(str):
    def leak(self, value):
        return super().format(value)


def process_event(event, meta):
    return S("{0.__class__.__mro__}").leak(event)
