# expect: compile
# CVE-2026-55830: positional-only _write_ lets item writes skip the guard
# ruff: noqa
def process_event(event, meta, _write_=lambda x: x, /):
    event["x"] = 1
    return event
