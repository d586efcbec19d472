# expect: compile
# import sys
# ruff: noqa
import sys


def process_event(event, meta):
    return sys.modules
