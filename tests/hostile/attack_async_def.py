# expect: compile
# async def
# ruff: noqa
async def process_event(event, meta):
    return event
