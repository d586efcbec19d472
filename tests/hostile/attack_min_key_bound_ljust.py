# expect: runtime PluginResourceError
# min() with key= a bound method of a handed-in str: C calls 'x'.ljust(10**10), still guarded
# ruff: noqa
def process_event(event, meta):
    return len(min([10**10], key="x".ljust))
