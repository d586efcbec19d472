# expect: compile
# a plugin class defining __del__ (runs at an arbitrary host moment)
# ruff: noqa
class Bomb:
    def __del__(self):
        while True:
            pass


def process_event(event, meta):
    return event
