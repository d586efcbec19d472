# expect: runtime PluginRuntimeError
# CVE-2025-22153: ExceptionGroup is not a builtin of plugins
# ruff: noqa
def process_event(event, meta):
    return ExceptionGroup("g", [ValueError(1)])
