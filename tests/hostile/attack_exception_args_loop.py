# expect: runtime PluginRuntimeError
# an exception whose `args` property loops forever when the host reads it to log the error
# ruff: noqa
def spin(self):
    while True:
        pass


class Evil(Exception):
    args = property(spin)


def process_event(event, meta):
    raise Evil("x")
