# expect: runtime PluginResourceError
# catch the sandbox's own abort, take the error it carries and raise that instead (forging a limit error)
# ruff: noqa
def process_event(event, meta):
    try:
        "x" * 10**10
    except BaseException as caught:
        forged = caught.error
    raise forged
