"""Where the time goes: the server in-process under cProfile, top costs per event.

    python -m benchmarks.profile [--events 20000] [--top 25]

Produces synthetic events (persons, one trivial plugin: the end-to-end scenario), drains them
through `Server` (one process, direct sink) under cProfile, and prints the functions with the most
own time, in µs per event. cProfile sees the trio thread only: plugin calls run in worker threads
and show as the thread hand-off, not as their own cost (benchmarks/vm_overhead.py measures that).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
from pathlib import Path

import trio

from benchmarks.run import Bench, messages_for
from plugin_server import aio, gc_policy, logs
from plugin_server.config import Settings
from plugin_server.embedded.stack import EmbeddedStack


async def profiled_drain(urls: dict[str, str], events: int) -> cProfile.Profile:
    bench = Bench(urls)
    async with aio.open_loop():
        await bench.migrate()
        settings, team = await bench.world("profile")
        await bench.produce(settings, messages_for(team.api_token, events, seed=7))
        profile = cProfile.Profile()
        profile.enable()
        await bench.drain(settings, team.id, events)
        profile.disable()
    return profile


def report(profile: cProfile.Profile, events: int, top: int) -> str:
    stats = pstats.Stats(profile)
    rows = []
    for (file, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((own, cumulative, calls, f"{Path(file).name}:{line}({name})"))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    lines = [f"total profiled: {total / events * 1e6:.0f} µs per event over {events} events", "own µs/event  cum µs/event  calls/event  function"]
    for own, cumulative, calls, where in rows[:top]:
        lines.append(f"{own / events * 1e6:12.1f}  {cumulative / events * 1e6:12.1f}  {calls / events:11.2f}  {where}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    logs.configure("warning")
    gc_policy.configure(Settings.from_env({}).gc_gen0_threshold)  # as the server process does (runner.serve)
    names = ("DATABASE_URL", "REDIS_URL", "KAFKA_HOSTS", "CLICKHOUSE_URL")
    if all(os.environ.get(n) for n in names):
        profile = trio.run(profiled_drain, {n: os.environ[n] for n in names}, args.events)
    else:
        with tempfile.TemporaryDirectory(prefix="profile-") as tmp:
            stack = EmbeddedStack(Path(tmp), prefer_default_ports=False, durable=False)
            try:
                profile = trio.run(profiled_drain, stack.start().as_env(), args.events)
            finally:
                stack.stop()
    print(report(profile, args.events, args.top))


if __name__ == "__main__":
    main()
