# expect: compile
# import importlib
# ruff: noqa
import importlib


def process_event(event, meta):
    return importlib.import_module("os")
