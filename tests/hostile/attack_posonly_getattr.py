# expect: compile
# CVE-2026-55830: a positional-only parameter named _getattr_ shadows the guard
# ruff: noqa
def process_event(event, meta, _getattr_=getattr, /):
    return event.__class__
