# expect: runtime PluginRuntimeError
# CVE-2024-47532: RestrictedPython's utility_builtins hand in `string`; we do not
# ruff: noqa
def process_event(event, meta):
    return string.Formatter().vformat("{0.__class__}", [event], {})
