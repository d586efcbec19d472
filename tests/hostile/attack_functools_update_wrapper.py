# expect: compile
# python-dev 2016-04 "Challenge: Please break this!" (V. Stinner, mail.python.org/pipermail/python-dev/2016-April/143984.html): functools.update_wrapper runs the host's real getattr/setattr
# ruff: noqa
from functools import update_wrapper


def process_event(event, meta):
    return update_wrapper(process_event, event)
