# expect: compile
# from . import x
# ruff: noqa
from . import helpers


def process_event(event, meta):
    return helpers
