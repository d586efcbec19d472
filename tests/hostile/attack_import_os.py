# expect: compile
# import os
# ruff: noqa
import os


def process_event(event, meta):
    return os.environ
