# expect: runtime PluginResourceError
# format() with a huge width
# ruff: noqa
def process_event(event, meta):
    return format(1, ">9999999999")
