# expect: compile
# CVE-2026-55830: lambda with a positional-only _getattr_
# ruff: noqa
f = lambda _getattr_=getattr, /: ().__class__


def process_event(event, meta):
    return f()
