# expect: runtime PluginResourceError
# join() over an infinite generator: the bounded materialization refuses it
# ruff: noqa
def gen():
    while True:
        yield "x"


def process_event(event, meta):
    return "".join(gen())
