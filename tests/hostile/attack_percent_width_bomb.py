# expect: runtime PluginResourceError
# '%0999999999d' % 1
# ruff: noqa
def process_event(event, meta):
    return "%0999999999d" % 1
