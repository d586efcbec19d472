# expect: runtime PluginRuntimeError
# an unguarded str.ljust through super()
# ruff: noqa
class S(str):
    def pad(self):
        return super().ljust(10**10)


def process_event(event, meta):
    return S("x").pad()
