# expect: runtime PluginResourceError
# strftime with a huge format
# ruff: noqa
import datetime


def process_event(event, meta):
    return datetime.datetime(2024, 1, 1).strftime("%c" * 100000)
