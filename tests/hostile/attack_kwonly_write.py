# expect: compile
# keyword-only parameter named _write_
# ruff: noqa
def process_event(event, meta, *, _write_=None):
    return event
