# expect: runtime PluginResourceError
# sum() over map() of a bound str method: C calls 'x'.center(10**10), still guarded
# ruff: noqa
def process_event(event, meta):
    return sum(map(len, map("x".center, [10**10])))
