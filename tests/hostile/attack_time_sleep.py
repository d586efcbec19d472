# expect: runtime PluginRuntimeError
# time.sleep blocks a worker thread where no tick can run
# ruff: noqa
import time


def process_event(event, meta):
    time.sleep(3600)
