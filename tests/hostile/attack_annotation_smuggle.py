# expect: compile
# annotated assignment (not supported by RestrictedPython)
# ruff: noqa
def process_event(event, meta):
    x: int = 1
    return x
