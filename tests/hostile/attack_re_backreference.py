# expect: runtime PluginRuntimeError
# backreferences are not RE2: refused with re.error, not a hang
# ruff: noqa
import re


def process_event(event, meta):
    return re.match(r"(a*)*\1$", "a" * 30 + "b")
