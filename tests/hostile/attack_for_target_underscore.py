# expect: compile
# for _getiter_ in ...
# ruff: noqa
def process_event(event, meta):
    for _getiter_ in [iter]:
        pass
    return event
