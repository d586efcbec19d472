# expect: compile
# exception __traceback__.tb_frame leads to the host's frames
# ruff: noqa
def process_event(event, meta):
    try:
        1 / 0
    except Exception as e:
        return e.__traceback__.tb_frame.f_back.f_globals
