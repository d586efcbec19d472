# expect: runtime PluginRuntimeError
# reach object through mro(); its private names stay closed
# ruff: noqa
class A:
    pass


def process_event(event, meta):
    base = A.mro()[-1]
    return getattr(base, "__sub" + "classes__")
