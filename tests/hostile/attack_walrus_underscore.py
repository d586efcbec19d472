# expect: compile
# walrus binding _print_
# ruff: noqa
def process_event(event, meta):
    if _print_ := 1:
        return event
