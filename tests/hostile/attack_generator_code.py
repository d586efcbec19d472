# expect: compile
# CVE-2023-37271: gi_code of a generator
# ruff: noqa
def process_event(event, meta):
    g = (i for i in range(3))
    return g.gi_code.co_consts
