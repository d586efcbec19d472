# expect: compile
# await
# ruff: noqa
def process_event(event, meta):
    await meta
