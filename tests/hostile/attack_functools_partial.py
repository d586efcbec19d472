# expect: compile
# functools.partial is not handed in (its .func/.args expose what it wraps)
# ruff: noqa
from functools import partial


def process_event(event, meta):
    return partial(len, event).func
