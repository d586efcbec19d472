# expect: compile
# CVE-2021-32807 / GHSA-qcx9-j53g-ccgf (AccessControl) and CVE-2021-32811 (Zope): subclass string.Formatter to resolve fields freely
# ruff: noqa
import string


class Leaky(string.Formatter):
    def get_field(self, field_name, args, kwargs):
        return self.get_value(field_name, args, kwargs), field_name


def process_event(event, meta):
    return Leaky().format("{0.__class__}", event)
