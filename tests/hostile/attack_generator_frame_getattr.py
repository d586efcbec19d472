# expect: runtime PluginRuntimeError
# CVE-2023-37271 via getattr: gi_frame and f_back named at run time
# ruff: noqa
def gen():
    yield 1


def process_event(event, meta):
    g = gen()
    frame = getattr(g, "gi" + "_frame")
    return getattr(frame, "f_" + "back")
