# expect: compile
# name __builtins__ directly
# ruff: noqa
def process_event(event, meta):
    return __builtins__["open"]("/etc/passwd").read()
