# expect: compile
# from json import *
# ruff: noqa
from json import *


def process_event(event, meta):
    return event
