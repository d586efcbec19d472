# expect: runtime PluginRuntimeError
# `jobs` is a dict subclass whose items() would run plugin code on the host after loading
# ruff: noqa
class Jobs(dict):
    def items(self):
        while True:
            pass


jobs = Jobs(send=len)


def process_event(event, meta):
    return None
