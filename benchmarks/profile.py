"""Where the time goes: the server in-process, top costs per event.

    python -m benchmarks.profile [--events 20000] [--top 25] [--sampler cprofile|py-spy]

Produces synthetic events (persons, one trivial plugin: the end-to-end scenario), drains them
through `Server` (one process, direct sink), and prints the functions with the most time, in µs
per event.

- `cprofile` (default): own and cumulative time of the trio thread. Deterministic, but it
  inflates small functions several times over, and plugin calls in worker threads show only as
  the thread hand-off.
- `py-spy` (in the `bench` extra): samples whichever thread holds the GIL (`--gil`), so the
  figures add up to the process's Python CPU time per event, plugin threads included, with
  little overhead. Needs ptrace rights over this process (root, or kernel.yama.ptrace_scope 0).
  Time in C code that keeps the GIL (orjson, the garbage collector) counts to the Python line
  that called it.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import trio

from benchmarks.run import Bench, messages_for
from benchmarks.stack import run_on_stack
from plugin_server.app.config import Settings
from plugin_server.core import aio

SAMPLES_PER_SECOND = 250


async def drain(urls: dict[str, str], events: int, sampler: str, top: int) -> str:
    bench = Bench(urls)
    async with aio.open_loop():
        await bench.migrate()
        settings, team = await bench.world("profile")
        await bench.produce(settings, messages_for(team.api_token, events, seed=7))
        if sampler == "py-spy":
            return report_samples(await _sampled(bench, settings, team.id, events), events, SAMPLES_PER_SECOND, top)
        profile = cProfile.Profile()
        profile.enable()
        await bench.drain(settings, team.id, events)
        profile.disable()
    return report_cprofile(profile, events, top)


async def _sampled(bench: Bench, settings: Settings, team_id: int, events: int) -> list[str]:
    beside = Path(sys.executable).with_name("py-spy")  # a virtualenv's scripts need not be on PATH
    spy = str(beside) if beside.exists() else shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy is not installed: pip install '.[bench]'")
    with tempfile.TemporaryDirectory(prefix="py-spy-") as tmp:
        out = Path(tmp) / "samples.txt"
        argv = [spy, "record", "--pid", str(os.getpid()), "--gil", "--threads", "--nonblocking",
                "--rate", str(SAMPLES_PER_SECOND), "--format", "raw", "--output", str(out)]  # fmt: skip
        # Popen returns at once: py-spy samples beside the drain and is signalled, never awaited.
        recorder = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: ASYNC220
        try:
            await trio.sleep(1.0)  # py-spy attaches
            if recorder.poll() is not None:
                raise SystemExit(f"py-spy could not sample this process: {recorder.stderr.read().decode().strip()}")
            await bench.drain(settings, team_id, events)
        finally:
            recorder.send_signal(signal.SIGINT)  # py-spy writes its samples on SIGINT
            await trio.to_thread.run_sync(recorder.wait, 30)
        return out.read_text().splitlines()


def report_cprofile(profile: cProfile.Profile, events: int, top: int = 25) -> str:
    stats = pstats.Stats(profile)
    rows = []
    for (file, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((own, cumulative, calls, f"{Path(file).name}:{line}({name})"))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    lines = [
        f"total profiled: {total / events * 1e6:.0f} µs per event over {events} events",
        "own µs/event  cum µs/event  calls/event  function",
    ]
    for own, cumulative, calls, where in rows[:top]:
        lines.append(f"{own / events * 1e6:12.1f}  {cumulative / events * 1e6:12.1f}  {calls / events:11.2f}  {where}")
    return "\n".join(lines)


def collapse(lines: Iterable[str]) -> tuple[int, Counter[str], Counter[str]]:
    """py-spy's raw format (`thread;frame;frame... count`, frames `name (path:line)`): the sample
    count, samples per function including callees (counted once per stack), and per function
    itself. Functions are `name (file)`, every line of a function together."""
    total, inclusive, own = 0, Counter[str](), Counter[str]()
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        functions = [_function(frame) for frame in stack.split(";")[1:]]  # [0] is the thread
        for function in set(functions):
            inclusive[function] += n
        if functions:
            own[functions[-1]] += n
    return total, inclusive, own


def _function(frame: str) -> str:
    name, _, where = frame.partition(" (")
    return f"{name} ({Path(where.rsplit(':', 1)[0]).name})" if where else name


def report_samples(lines: Iterable[str], events: int, rate: int, top: int = 25) -> str:
    total, inclusive, own = collapse(lines)
    per_event = 1e6 / rate / events  # µs of one sample, spread over the events

    def table(title: str, counter: Counter[str]) -> list[str]:
        return [title, *(f"{n * per_event:10.1f}  {function}" for function, n in counter.most_common(top))]

    return "\n".join([
        f"GIL held: {total * per_event:.0f} µs per event over {events} events ({total} samples at {rate}/s)",
        *table("incl µs/event  function (with what it calls)", inclusive),
        *table("own µs/event  function", own),
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--sampler", choices=("cprofile", "py-spy"), default="cprofile")
    args = parser.parse_args()
    text = run_on_stack(drain, args.events, args.sampler, args.top)
    print(text)


if __name__ == "__main__":
    main()
