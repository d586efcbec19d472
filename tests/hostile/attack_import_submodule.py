# expect: compile
# import json.decoder (submodules are not on the list)
# ruff: noqa
import json.decoder


def process_event(event, meta):
    return json.decoder
