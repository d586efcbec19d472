# expect: runtime PluginRuntimeError
# a metaclass by subclassing type(...): `type` is not a builtin of plugins
# ruff: noqa
def process_event(event, meta):
    class Meta(type(list)):
        pass

    return Meta
