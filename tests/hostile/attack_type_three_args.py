# expect: runtime PluginRuntimeError
# type(name, bases, dict) to build a class without the policy
# ruff: noqa
def process_event(event, meta):
    return type("X", (), {"__getattr__": len})
