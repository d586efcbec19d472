# expect: runtime PluginResourceError
# the shift guard with a plugin's int subclass as the shift count
# ruff: noqa
class I(int):
    pass


def process_event(event, meta):
    return (1 << I(10**11)) > 0
