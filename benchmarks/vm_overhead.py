"""Plugin VM overhead: one trivial `process_event` per event, sandboxed versus plain Python.

    python -m benchmarks.vm_overhead [--events 20000]

Both run the same function body (add one property, return the event) over the same synthetic
events (the properties of `plugin-server synth` events, ~25 keys):
- plain: the function called directly, as a plugin in an unrestricted VM would be;
- sandboxed: the runtime's path (plugin_server/plugins/chain.py `run_chain`): the event copied in, the compiled
  plugin called under its budget, the result checked and copied out;
- sandboxed + threads: the same through `trio.to_thread.run_sync` per chunk, as the pipeline does.
Prints JSON: ns per event of each, and the ratios to plain.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

import trio

from plugin_server.ops import synth
from plugin_server.plugins.chain import ChainReport, Progress, run_chain
from plugin_server.plugins.loaded import LoadedConfig
from plugin_server.plugins.logs import LogTarget, PluginLogs
from plugin_server.plugins.runtime import CHUNK_EVENTS
from plugin_server.storage.plugins import ConfigRow
from vm.sandbox import compile_plugin

SOURCE = """
def process_event(event, meta):
    event["properties"]["processed"] = True
    return event
"""


def plain_process_event(event: dict[str, Any], meta: Any) -> dict[str, Any]:
    event["properties"]["processed"] = True
    return event


def sample_events(count: int) -> list[dict[str, Any]]:
    out = []
    for message in synth.generate(token="phc_bench", events=count, persons=100, seed=3, now=dt.datetime.now(dt.UTC)):
        envelope = json.loads(message.value)
        data = json.loads(envelope["data"])
        out.append({
            "uuid": envelope["uuid"], "event": data["event"], "distinct_id": envelope["distinct_id"],
            "properties": data["properties"], "timestamp": data.get("timestamp"), "team_id": 1, "ip": None,
            "site_url": "", "now": envelope["now"], "sent_at": None,
        })  # fmt: skip
    return out


def loaded_config() -> LoadedConfig:
    instance = compile_plugin({"main.py": SOURCE}).instantiate(timeout=30, log=lambda kind, text: None)
    row = ConfigRow(
        config_id=1, team_id=1, order=0, config={}, plugin_id=1, plugin_name="bench", config_schema=[], sources={}
    )
    loaded = LoadedConfig(row, instance, None, LogTarget(1, 1, 1, "bench"), PluginLogs(), 30.0)
    loaded.ready = True
    return loaded


def best_of(runs: int, fn: Callable[[], None]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def measure(count: int) -> dict[str, Any]:
    """ns per event of each variant, and the ratios to plain."""
    events = sample_events(count)
    chain = [loaded_config()]

    def plain() -> None:
        for event in events:
            plain_process_event(event, None)

    def sandboxed() -> None:
        run_chain(chain, events, Progress(), ChainReport())

    def threaded() -> None:
        async def run() -> None:
            async with trio.open_nursery() as nursery:
                for start in range(0, len(events), CHUNK_EVENTS):
                    chunk = events[start : start + CHUNK_EVENTS]
                    nursery.start_soon(trio.to_thread.run_sync, run_chain, chain, chunk, Progress(), ChainReport())

        trio.run(run)

    plain_s, sandboxed_s, threaded_s = best_of(5, plain), best_of(3, sandboxed), best_of(3, threaded)
    per_event = {name: seconds / len(events) * 1e9 for name, seconds in
                 (("plain_ns", plain_s), ("sandboxed_ns", sandboxed_s), ("sandboxed_threads_ns", threaded_s))}  # fmt: skip
    return {
        "events": len(events),
        **{k: round(v) for k, v in per_event.items()},
        "ratio": round(per_event["sandboxed_ns"] / per_event["plain_ns"], 1),
        "ratio_threads": round(per_event["sandboxed_threads_ns"] / per_event["plain_ns"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    print(json.dumps(measure(args.events)))


if __name__ == "__main__":
    main()
