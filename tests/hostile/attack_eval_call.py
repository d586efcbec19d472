# expect: compile
# eval()
# ruff: noqa
def process_event(event, meta):
    return eval("1")
