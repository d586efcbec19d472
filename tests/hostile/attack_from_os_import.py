# expect: compile
# from os import path
# ruff: noqa
from os import path


def process_event(event, meta):
    return path.exists("/")
