# expect: runtime PluginTimeout
# swallow the deadline abort with except BaseException and return at once, with no tick left to run
# ruff: noqa
def process_event(event, meta):
    try:
        while True:
            pass
    except BaseException:
        return "escaped the deadline"
