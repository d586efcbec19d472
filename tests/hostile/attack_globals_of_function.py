# expect: compile
# read a function's __globals__ to reach builtins
# ruff: noqa
def helper():
    pass


def process_event(event, meta):
    return helper.__globals__["__builtins__"]
