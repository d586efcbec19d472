# expect: runtime PluginRuntimeError
# set an attribute on a plugin function (functions are read-only)
# ruff: noqa
def helper():
    pass


def process_event(event, meta):
    helper.attr = 1
