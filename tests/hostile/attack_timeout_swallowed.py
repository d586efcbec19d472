# expect: runtime PluginTimeout
# except BaseException around an infinite loop, forever
# ruff: noqa
def process_event(event, meta):
    while True:
        try:
            while True:
                pass
        except BaseException:
            pass
