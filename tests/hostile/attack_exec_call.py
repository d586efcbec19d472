# expect: compile
# exec()
# ruff: noqa
def process_event(event, meta):
    exec("import os")
