# expect: runtime PluginRuntimeError
# CVE-2023-37271: cr_frame/ag_frame names through getattr
# ruff: noqa
def process_event(event, meta):
    return getattr(event, "cr" + "_frame", None) or getattr(event, "ag" + "_frame")
