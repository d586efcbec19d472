# expect: runtime PluginResourceError
# round(5, -10**18) computes 10**(10**18)
# ruff: noqa
def process_event(event, meta):
    return round(5, -(10**18))
