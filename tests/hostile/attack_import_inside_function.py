# expect: compile
# import subprocess inside a function body
# ruff: noqa
def process_event(event, meta):
    import subprocess

    return subprocess.run(["id"], check=False)
