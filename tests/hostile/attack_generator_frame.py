# expect: compile
# CVE-2023-37271: gi_frame.f_back.f_globals of a generator
# ruff: noqa
def process_event(event, meta):
    gen = (x for x in [1])
    return gen.gi_frame.f_back.f_globals
