# expect: compile
# __import__('os')
# ruff: noqa
def process_event(event, meta):
    return __import__("os").environ
