# expect: runtime PluginRuntimeError
# with meta: MetaError
# a job payload is serialized on the host too
# ruff: noqa
def process_event(event, meta):
    value = {}
    for _ in range(40):
        value = {"a": value, "b": value}
    meta.jobs.send(value).run_now()
    return event


def send(payload, meta):
    pass


jobs = {"send": send}
