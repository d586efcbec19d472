# expect: runtime PluginRuntimeError
# an exception whose `args` property hides a self-similar structure from the message size estimate
# ruff: noqa
def nothing(self):
    return ()


class Evil(Exception):
    args = property(nothing)


def process_event(event, meta):
    a = [1]
    for i in range(40):
        a = [a, a]
    raise Evil(a)
