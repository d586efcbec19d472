# expect: runtime PluginRuntimeError
# raise BaseException
# ruff: noqa
def process_event(event, meta):
    raise BaseException("stop the server")
