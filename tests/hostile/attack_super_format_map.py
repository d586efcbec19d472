# expect: runtime PluginRuntimeError
# str.format_map through two-argument super(): field access into the mapping's values
# ruff: noqa
class S(str):
    pass


def process_event(event, meta):
    return super(S, S("{e.__class__}")).format_map({"e": event})
