# expect: runtime PluginRuntimeError
# reach __class__ through getattr with a name built at run time
# ruff: noqa
def process_event(event, meta):
    name = "_" + "_class" + "__"
    return getattr((), name)
