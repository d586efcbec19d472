# expect: compile
# CVE-2025-22153: except* with ExceptionGroup leaks frames
# ruff: noqa
def process_event(event, meta):
    try:
        raise ExceptionGroup("g", [ValueError(1)])
    except* ValueError as eg:
        return eg.exceptions
