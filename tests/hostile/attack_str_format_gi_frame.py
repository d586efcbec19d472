# expect: runtime PluginRuntimeError
# CVE-2023-41039: '{0.gi_frame}'.format(generator)
# ruff: noqa
def process_event(event, meta):
    g = (x for x in [1])
    return "{0.gi_frame.f_back}".format(g)
