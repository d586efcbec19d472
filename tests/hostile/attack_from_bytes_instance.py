# expect: runtime PluginResourceError
# int.from_bytes reached through an int instance (a classmethod binds to the class either way)
# ruff: noqa
def process_event(event, meta):
    a = (0).from_bytes(bytes(range(256)) * 39_000, "little")
    b = (0).from_bytes(bytes(range(1, 256)) * 19_000, "little")
    return a % b > 0
