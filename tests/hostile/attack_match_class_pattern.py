# expect: compile
# match with a class pattern extracting __class__
# ruff: noqa
def process_event(event, meta):
    match event:
        case dict(__class__=c):
            return c
