# expect: runtime PluginRuntimeError
# an exception whose `args` is a plugin property: the host formats the message without running it
# ruff: noqa
def boom(self):
    return 1 / 0


class Evil(Exception):
    args = property(boom)


def process_event(event, meta):
    raise Evil("x")
