# expect: runtime PluginResourceError
# the product guard asked `type(a) is int`: repeated squaring through a plugin's int subclass
# ruff: noqa
class I(int):
    pass


def process_event(event, meta):
    x = 3
    for _ in range(40):
        x = I(x) * x
    return x > 0
