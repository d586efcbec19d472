# expect: runtime PluginRuntimeError
# an exception argument whose inherited Python __str__ (uuid.UUID) reads a plugin property
# ruff: noqa
import uuid


def spin(self):
    while True:
        pass


def keep(self, value):
    pass


class Sneaky(uuid.UUID):
    int = property(spin, keep)


def process_event(event, meta):
    raise ValueError(Sneaky("12345678123456781234567812345678"))
