# expect: runtime PluginRuntimeError
# __traceback__ through getattr with a computed name
# ruff: noqa
def process_event(event, meta):
    try:
        1 / 0
    except Exception as e:
        return getattr(e, "__trace" + "back__")
