# expect: compile
# except ... as _write_
# ruff: noqa
def process_event(event, meta):
    try:
        pass
    except Exception as _write_:
        pass
    return event
