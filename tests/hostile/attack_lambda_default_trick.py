# expect: compile
# lambda default argument capturing a dunder
# ruff: noqa
f = lambda x=().__class__: x


def process_event(event, meta):
    return f()
