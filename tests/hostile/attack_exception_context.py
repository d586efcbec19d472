# expect: compile
# host objects through an exception's __context__
# ruff: noqa
def process_event(event, meta):
    try:
        {}["x"]
    except KeyError as e:
        return e.with_traceback(None).__context__
