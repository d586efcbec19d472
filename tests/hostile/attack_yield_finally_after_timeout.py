# expect: runtime PluginTimeout
# a generator suspended in try/finally whose finally loops forever once the deadline has passed
# ruff: noqa
def forever():
    try:
        while True:
            yield 1
    finally:
        while True:
            try:
                pass
            except BaseException:
                pass


def process_event(event, meta):
    for item in forever():
        pass
