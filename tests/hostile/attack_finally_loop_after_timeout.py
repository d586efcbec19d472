# expect: runtime PluginTimeout
# finally blocks that loop forever after the timeout, each swallowing the abort
# ruff: noqa
def process_event(event, meta):
    try:
        while True:
            pass
    finally:
        while True:
            try:
                while True:
                    pass
            except BaseException:
                pass
