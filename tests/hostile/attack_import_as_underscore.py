# expect: compile
# import json as _getattr_
# ruff: noqa
import json as _getattr_


def process_event(event, meta):
    return event
