# expect: compile
# from json import codecs (not an allowed member)
# ruff: noqa
from json import codecs


def process_event(event, meta):
    return codecs
