# expect: compile
# CVE-2026-76825 / CVE-2024-47532: string.Formatter().get_field resolves attributes
# ruff: noqa
import string


def process_event(event, meta):
    return string.Formatter().get_field("0.__class__", [event], {})
