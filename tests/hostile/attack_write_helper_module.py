# expect: runtime PluginRuntimeError
# another file's globals are read-only
# ruff: noqa
import json as j


def process_event(event, meta):
    import main

    main.process_event = len
