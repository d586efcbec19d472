# expect: runtime PluginResourceError
# '\t'.expandtabs(10**10)
# ruff: noqa
def process_event(event, meta):
    return "\t\t".expandtabs(10**10)
