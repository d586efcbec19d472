# expect: runtime PluginRuntimeError
# uuid.uuid1 reveals the host's MAC address
# ruff: noqa
import uuid


def process_event(event, meta):
    return str(uuid.uuid1())
