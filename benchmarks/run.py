"""`python -m benchmarks run [--quick]`: every scenario of issue 6, one summary.

Starts the embedded stack (or uses DATABASE_URL, REDIS_URL, KAFKA_HOSTS, CLICKHOUSE_URL when all
are set) and runs, each on fresh topics, groups and a fresh team:
1. raw ceilings (the baselines): Kafka -> orjson -> ClickHouse, directly, and through a Kafka
   topic and a second consumer (the Kafka sink + writer path);
2. end to end with persons and one trivial plugin, one process and two worker processes;
3. visibility latency at 50% of the one-process capacity: produce -> queryable in ClickHouse;
4. plugin VM overhead (benchmarks/vm_overhead.py);
5. person-heavy events (30% identify/alias/$set) as the person table grows;
6. footprint: RSS of every process of the stack at ~1,000 events/s, and CPU seconds per million;
7. catch-up: events queued while the server is down, time to drain and peak RSS;
8. export: end to end with an `export_events` plugin too (issue 5's async side), until every
   event was exported, against end to end without it.
Writes benchmarks/results/summary.json, summary.md and PNG plots (matplotlib, if installed).
`--quick` runs every scenario smaller (about 10 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psutil
import trio

from benchmarks import report, skeleton, vm_overhead
from benchmarks.stack import run_on_stack
from plugin_server.app.config import Settings
from plugin_server.app.server import Server
from plugin_server.core import aio
from plugin_server.ops import synth
from plugin_server.ops.tools import topics_of
from plugin_server.storage.clickhouse import open_clickhouse
from plugin_server.storage.kafka.admin import delete_topics, ensure_topics
from plugin_server.storage.kafka.client import Record
from plugin_server.storage.kafka.consumer import open_consumer
from plugin_server.storage.kafka.producer import open_producer
from plugin_server.storage.kafka.reader import open_offsets_reader
from plugin_server.storage.migrations import migrate_clickhouse, migrate_postgres
from plugin_server.storage.plugins import PluginStore
from plugin_server.storage.postgres import open_postgres
from plugin_server.storage.teams import TeamStore

TRIVIAL_PLUGIN = 'def process_event(event, meta):\n    event["properties"]["bench"] = True\n    return event\n'
# Counts what it was handed in its own storage, so the scenario can check that nothing was lost.
EXPORT_PLUGIN = 'def export_events(events, meta):\n    meta.utils.cursor.increment("exported", len(events))\n'
EXPORTED_SQL = """
SELECT coalesce(sum(s.value::bigint), 0)::bigint FROM posthog_pluginstorage s
JOIN posthog_pluginconfig c ON c.id = s.plugin_config_id WHERE c.team_id = $1 AND s.key = 'exported'"""
PERSON_HEAVY = synth.Mix(pageview=50, custom=20, identify=15, alias=5, set=10, groupidentify=0)
PRELOAD_CHUNK = 100_000
DRAIN_POLL_SECONDS = 0.02
BENCH_PARTITIONS = 8
PRELOAD_SQL = """
WITH created AS (
    INSERT INTO posthog_person (uuid, created_at, team_id, properties, properties_last_updated_at,
        properties_last_operation, is_identified, version)
    SELECT gen_random_uuid(), now(), $1, jsonb_build_object('i', i), '{}', '{}', false, 0
    FROM generate_series($2::int, $3::int) AS i
    RETURNING id, (properties->>'i')::int AS i
)
INSERT INTO posthog_persondistinctid (team_id, person_id, distinct_id, version)
SELECT $1, id, 'preload-' || i, 0 FROM created"""


@dataclass(frozen=True)
class Sizes:
    throughput: int
    latency_seconds: float
    person_points: tuple[int, ...]
    person_events: int
    footprint_seconds: float
    catchup: int
    vm_events: int


QUICK = Sizes(20_000, 15.0, (10_000, 100_000), 10_000, 10.0, 50_000, 5_000)
FULL = Sizes(200_000, 60.0, (10_000, 100_000, 1_000_000), 50_000, 30.0, 1_000_000, 20_000)


class Bench:
    """One benchmark run: the stack's URLs, and a fresh world (topics, groups, team) per scenario."""

    def __init__(self, urls: dict[str, str]) -> None:
        self.urls = urls
        self._baseline = 0  # rows of the team already there when a drain starts
        # The current scenario's topics. The embedded broker keeps every message in memory, so
        # each scenario deletes the previous one's: the RSS figures are then the scenario's own,
        # not the whole run's history.
        self.topics: list[str] = []

    async def retire(self) -> None:
        """Delete the topics of the scenario before (nothing consumes them any more)."""
        if self.topics:
            await delete_topics(hosts=self.urls["KAFKA_HOSTS"], topics=self.topics)
            self.topics = []

    async def migrate(self) -> None:
        async with open_postgres(self.urls["DATABASE_URL"], max_size=2) as pg:
            await migrate_postgres(pg)
        async with open_clickhouse(self.urls["CLICKHOUSE_URL"]) as ch:
            await migrate_clickhouse(ch)

    async def world(self, name: str, **extra: str) -> tuple[Settings, Any]:
        run = f"{name}_{uuid.uuid4().hex[:6]}"
        settings = Settings.from_env({
            **self.urls, "HTTP_PORT": "0", "LOG_LEVEL": "warning", "PLUGIN_SERVER_ADMIN_TOKEN": "bench",
            "KAFKA_CONSUMPTION_TOPIC": f"b_{run}", "KAFKA_CONSUMER_GROUP": f"b-{run}", "KAFKA_DEAD_LETTER_TOPIC": f"b_dlq_{run}",
            "CLICKHOUSE_JSON_EVENTS_KAFKA_TOPIC": f"b_ev_{run}", "CLICKHOUSE_INGESTION_WARNINGS_KAFKA_TOPIC": f"b_w_{run}",
            "CLICKHOUSE_PERSON_KAFKA_TOPIC": f"b_p_{run}", "CLICKHOUSE_PERSON_DISTINCT_ID_KAFKA_TOPIC": f"b_pd_{run}",
            "CLICKHOUSE_GROUPS_KAFKA_TOPIC": f"b_g_{run}", "CLICKHOUSE_PLUGIN_LOG_ENTRIES_KAFKA_TOPIC": f"b_l_{run}",
            "KAFKA_WRITER_GROUP": f"b-w-{run}", "KAFKA_ASYNC_GROUP": f"b-a-{run}", **extra,
        })  # fmt: skip
        await self.retire()
        self.topics = topics_of(settings)
        await ensure_topics(hosts=settings.kafka_hosts, topics=self.topics, partitions=BENCH_PARTITIONS)
        async with open_postgres(settings.database_url, max_size=2) as pg:
            team = await TeamStore(pg=pg).create(f"bench-{run}")
            await PluginStore(pg=pg).install(
                team_id=team.id, name="trivial", description="", url="", config_schema=[], capabilities={},
                sources={"main.py": TRIVIAL_PLUGIN}, config={}, order=0,
            )  # fmt: skip
        return settings, team

    async def produce(self, settings: Settings, messages: Any) -> int:
        count = 0
        async with open_producer(hosts=settings.kafka_hosts, client_id="bench") as producer:
            while chunk := [
                Record(settings.kafka_consumption_topic, m.value, m.key)
                for _, m in zip(range(10_000), messages, strict=False)
            ]:
                await producer.send_batch(chunk)
                count += len(chunk)
        return count

    async def count_events(self, settings: Settings, team_id: int) -> int:
        async with open_clickhouse(settings.clickhouse_url) as ch:
            return await events_of(ch, team_id)

    async def drain(
        self,
        settings: Settings,
        team_id: int,
        events: int,
        *,
        peak: list[dict[str, float]] | None = None,
        finished: Callable[[], Awaitable[bool]] | None = None,
    ) -> float:
        """Run a server until the team has `events` rows in ClickHouse. Returns the ingestion rate,
        events/s from the first committed batch to the last (start-up and the group join are not
        the pipeline's speed; visibility through the writer's batches would overstate it). An
        in-process consumer reports its commits itself; worker processes are read from the group's
        committed offsets, polled sparingly through one client.

        `finished`: polled once ingestion is done; the drain ends, and its rate is measured to,
        the first poll where it is true (for work that follows ingestion, such as exports).
        A drain that is not done within `drain_deadline(events)` raises TooSlowError."""
        partitions = [(settings.kafka_consumption_topic, p) for p in range(BENCH_PARTITIONS)]
        expected = events - self._baseline  # new messages this drain consumes
        server = Server(settings)
        first: tuple[float, int] | None = None
        last: tuple[float, int] | None = None
        in_process = settings.worker_concurrency == 1
        with trio.fail_after(drain_deadline(expected)):  # outside the nursery: a plain TooSlowError
            async with (
                open_offsets_reader(hosts=settings.kafka_hosts, group_id=settings.kafka_consumer_group) as reader,
                trio.open_nursery() as nursery,
            ):

                async def committed() -> int:
                    return sum(v or 0 for v in (await reader.committed(partitions)).values())

                base = 0 if in_process else await committed()
                nursery.start_soon(server.run)  # not start(): ingestion may be done before every consumer joined
                async with open_clickhouse(settings.clickhouse_url) as ch:
                    while True:
                        if peak is not None:
                            peak.append(stack_rss_mb())
                        if in_process:
                            done = sum(c.consumed for c in server.state.consumers if c.name == "ingestion")
                        else:
                            done = await committed() - base
                        now = time.perf_counter()
                        if first is None and done > 0:
                            first = (now, done)
                        if done >= expected and last is None:
                            last = (now, done)
                        if last is not None and await events_of(ch, team_id) >= events:
                            if finished is None:
                                break
                            if await finished():
                                last = (time.perf_counter(), done)
                                break
                        await trio.sleep(DRAIN_POLL_SECONDS if in_process else 10 * DRAIN_POLL_SECONDS)
                server.request_stop()
        (started, at_start), (ended, at_end) = first, last
        if ended - started < 0.2 or at_end <= at_start:
            raise RuntimeError(
                f"the drain was too fast to measure ({at_end - at_start} events in {ended - started:.3f} s)"
            )
        return (at_end - at_start) / (ended - started)


def drain_deadline(events: int) -> float:
    """Seconds a drain may take: generous (200 events/s), so that only a stall or a lost event
    ends it, with an error rather than a benchmark that never returns."""
    return 120.0 + events / 200


async def events_of(ch: Any, team_id: int) -> int:
    """Rows of the team in ClickHouse's events table."""
    raw = await ch.query_json(f"SELECT count() AS c FROM events WHERE team_id = {int(team_id)}")
    return int(orjson.loads(raw.splitlines()[0])["c"])


def messages_for(token: str, events: int, *, seed: int, mix: synth.Mix = synth.DEFAULT_MIX) -> Any:
    return synth.generate(
        token=token, events=events, persons=max(1, events // 50), seed=seed, now=dt.datetime.now(dt.UTC), mix=mix
    )


def stack_rss_mb() -> dict[str, float]:
    """RSS in MB of this process and every process it started (the embedded stack, worker
    processes), summed per process name ("python" is this process with the in-process server and
    any worker processes), with "total". Postgres's shared buffers count once per backend."""
    me = psutil.Process()
    by_name: dict[str, float] = {}
    for process in (me, *me.children(recursive=True)):
        try:
            name, rss = process.name(), process.memory_info().rss
        except psutil.Error:
            continue
        by_name[name] = by_name.get(name, 0) + rss / 1e6
    rounded = {name: round(mb, 1) for name, mb in sorted(by_name.items())}
    return rounded | {"total": round(sum(by_name.values()), 1)}


def peak_rss(samples: list[dict[str, float]]) -> dict[str, float] | None:
    """The sample with the largest total."""
    return max(samples, key=lambda s: s["total"]) if samples else None


def cpu_seconds() -> float:
    me = psutil.Process()
    times = me.cpu_times()
    total = times.user + times.system
    for child in me.children(recursive=True):
        try:
            t = child.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


async def raw_ceilings(bench: Bench, sizes: Sizes) -> dict[str, float]:
    settings, team = await bench.world("raw")
    await bench.produce(settings, messages_for(team.api_token, sizes.throughput, seed=1))
    direct = await skeleton.raw_ceiling(settings, sizes.throughput, f"bench_raw_{uuid.uuid4().hex[:6]}")
    table = f"bench_rawk_{uuid.uuid4().hex[:6]}"
    bench.topics.append(topic := f"{table}_rows")  # deleted with the scenario's own
    kafka = await raw_ceiling_kafka(settings, sizes.throughput, table, topic)
    return {"raw_ceiling_eps": round(direct), "raw_ceiling_kafka_eps": round(kafka)}


async def raw_ceiling_kafka(settings: Settings, events: int, table: str, topic: str) -> float:
    """The Kafka sink's path, as plainly as possible: consume -> rows -> `topic` -> consume -> insert."""
    await ensure_topics(hosts=settings.kafka_hosts, topics=[topic], partitions=8)
    started: list[float] = []

    async def to_topic() -> None:
        async with (
            open_consumer(hosts=settings.kafka_hosts, topics=[settings.kafka_consumption_topic], group_id=f"{table}-a", client_id="rk") as consumer,
            open_producer(hosts=settings.kafka_hosts, client_id="rk") as producer,
        ):  # fmt: skip
            done = 0
            while done < events:
                batch = await consumer.getmany(timeout_ms=100, max_records=settings.ingestion_batch_size)
                if batch:
                    started or started.append(time.perf_counter())
                    await producer.send_batch(Record(topic, raw_row(m)) for m in batch)
                    await consumer.commit({(m.topic, m.partition): m.offset + 1 for m in batch})
                    done += len(batch)

    async def to_clickhouse() -> None:
        async with open_clickhouse(settings.clickhouse_url) as ch:
            await ch.command(f"CREATE TABLE {table} AS events")
            async with open_consumer(
                hosts=settings.kafka_hosts, topics=[topic], group_id=f"{table}-b", client_id="rk"
            ) as consumer:
                done = 0
                while done < events:
                    batch = await consumer.getmany(timeout_ms=100, max_records=settings.ingestion_batch_size)
                    if batch:
                        await ch.insert_json(
                            table,
                            skeleton.RAW_COLUMNS,
                            b"\n".join(m.value for m in batch),
                            dedup_token=uuid.uuid4().hex,
                        )
                        await consumer.commit({(m.topic, m.partition): m.offset + 1 for m in batch})
                        done += len(batch)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(to_topic)
        nursery.start_soon(to_clickhouse)
    return events / (time.perf_counter() - started[0])


def raw_row(message: Any) -> bytes:
    envelope = orjson.loads(message.value)
    data = orjson.loads(envelope["data"])
    return orjson.dumps({
        "uuid": envelope["uuid"], "event": data["event"], "properties": orjson.dumps(data.get("properties", {})).decode(),
        "timestamp": envelope["now"][:26].replace("T", " ").rstrip("Z"), "team_id": 1,
        "distinct_id": str(envelope["distinct_id"]), "_offset": message.offset,
    })  # fmt: skip


async def end_to_end(bench: Bench, sizes: Sizes, *, processes: int) -> dict[str, float]:
    settings, team = await bench.world(f"e2e{processes}", WORKER_CONCURRENCY=str(processes))
    await bench.produce(settings, messages_for(team.api_token, sizes.throughput, seed=2))
    cpu_before = cpu_seconds()
    eps = await bench.drain(settings, team.id, sizes.throughput)
    cpu = cpu_seconds() - cpu_before  # includes start-up: an upper bound
    return {"eps": round(eps), "cpu_s_per_million": round(cpu / sizes.throughput * 1e6, 1)}


async def visibility_latency(bench: Bench, sizes: Sizes, *, rate: float) -> dict[str, Any]:
    """Produce at `rate` with a sequence number; poll ClickHouse for newly visible ones."""
    settings, team = await bench.world("latency")
    server = Server(settings)
    produced: dict[int, float] = {}
    seen: dict[int, float] = {}
    rss: list[dict[str, float]] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)

        async def producer() -> None:
            async with open_producer(hosts=settings.kafka_hosts, client_id="bench-latency") as kafka:
                seq, started = 0, time.perf_counter()
                while time.perf_counter() - started < sizes.latency_seconds:
                    due = int((time.perf_counter() - started) * rate)
                    batch = []
                    while seq < due:
                        batch.append(Record(settings.kafka_consumption_topic, capture(team.api_token, seq), None))
                        produced[seq] = time.perf_counter()
                        seq += 1
                    if batch:
                        await kafka.send_batch(batch)
                    rss.append(stack_rss_mb())
                    await trio.sleep(0.01)

        nursery.start_soon(producer)
        async with open_clickhouse(settings.clickhouse_url) as ch:
            await trio.sleep(0.5)
            while not produced or len(seen) < len(produced) or time.perf_counter() - max(produced.values()) < 1:
                raw = await ch.query_json(
                    f"SELECT JSONExtractInt(properties, 'seq') AS s FROM events WHERE team_id = {team.id}"
                )
                now = time.perf_counter()
                for line in raw.splitlines():
                    seen.setdefault(orjson.loads(line)["s"], now)
                if time.perf_counter() - max(produced.values() or [now]) > 30:
                    break
                await trio.sleep(0.1)
        server.request_stop()
    samples = sorted((seen[s] - produced[s]) * 1000 for s in seen if s in produced)
    return {
        "p50": round(percentile(samples, 50)), "p95": round(percentile(samples, 95)), "p99": round(percentile(samples, 99)),
        "load_eps": round(rate), "events": len(samples), "lost": len(produced) - len(samples),
        "samples_ms": [round(s) for s in samples], "rss_mb": peak_rss(rss),
    }  # fmt: skip


def capture(token: str, seq: int) -> bytes:
    data = {"event": "$pageview", "properties": {"seq": seq}}
    return orjson.dumps({
        "uuid": str(uuid.uuid4()), "distinct_id": f"lat-{seq % 500}", "ip": None, "site_url": "",
        "data": orjson.dumps(data).decode(), "now": dt.datetime.now(dt.UTC).isoformat(), "token": token,
    })  # fmt: skip


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    index = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[index]


async def person_growth(bench: Bench, sizes: Sizes) -> list[dict[str, int]]:
    settings, team = await bench.world("persons")
    points = []
    loaded = 0
    async with open_postgres(settings.database_url, max_size=2) as pg:
        for target in sizes.person_points:
            while loaded < target:
                upto = min(target, loaded + PRELOAD_CHUNK)
                await pg.execute(PRELOAD_SQL, team.id, loaded + 1, upto)
                loaded = upto
            await pg.execute("ANALYZE posthog_person; ANALYZE posthog_persondistinctid")
            bench._baseline = before = await bench.count_events(settings, team.id)
            await bench.produce(
                settings, messages_for(team.api_token, sizes.person_events, seed=100 + target, mix=PERSON_HEAVY)
            )
            eps = await bench.drain(settings, team.id, before + sizes.person_events)
            bench._baseline = 0
            points.append({"persons": target, "eps": round(eps)})
    return points


async def footprint(bench: Bench, sizes: Sizes) -> dict[str, float] | None:
    """Peak RSS of all processes while ingesting ~1,000 events/s, per process name and total."""
    latency = await visibility_latency(
        bench, dataclasses.replace(sizes, latency_seconds=sizes.footprint_seconds), rate=1000
    )
    return latency["rss_mb"]


async def catchup(bench: Bench, sizes: Sizes) -> dict[str, float]:
    settings, team = await bench.world("catchup")
    await bench.produce(settings, messages_for(team.api_token, sizes.catchup, seed=3))
    samples: list[dict[str, float]] = []
    started = time.perf_counter()
    await bench.drain(settings, team.id, sizes.catchup, peak=samples)
    seconds = time.perf_counter() - started  # from the server's start: catching up includes starting
    peak = peak_rss(samples)
    return {
        "events": sizes.catchup, "seconds": round(seconds, 1), "peak_rss_mb": peak["total"] if peak else None,
        "peak_rss_by_process_mb": peak,
    }  # fmt: skip


async def export(bench: Bench, sizes: Sizes, *, without_eps: float) -> dict[str, Any]:
    """End to end with an `export_events` plugin beside the trivial one, one process: events/s
    from the first committed batch until the plugin has been handed every event, and the ratio
    to end to end without it. `exported` counts what the plugin was handed (at least once: a
    figure below `events` means a lost event, above it a redelivery)."""
    settings, team = await bench.world("export")
    async with open_postgres(settings.database_url, max_size=2) as pg:
        await PluginStore(pg=pg).install(
            team_id=team.id, name="export", description="", url="", config_schema=[], capabilities={},
            sources={"main.py": EXPORT_PLUGIN}, config={}, order=1,
        )  # fmt: skip

        async def exported() -> int:
            return await pg.fetchval(EXPORTED_SQL, team.id)

        async def all_exported() -> bool:
            return await exported() >= sizes.throughput

        await bench.produce(settings, messages_for(team.api_token, sizes.throughput, seed=4))
        eps = await bench.drain(settings, team.id, sizes.throughput, finished=all_exported)
        count = await exported()
    return {
        "events": sizes.throughput,
        "eps": round(eps),
        "exported": count,
        "ratio_to_e2e": round(eps / without_eps, 3),
    }


async def run_all(urls: dict[str, str], sizes: Sizes, quick: bool) -> dict[str, Any]:
    bench = Bench(urls)
    async with aio.open_loop():
        await bench.migrate()
        summary: dict[str, Any] = {"quick": quick}
        step("raw ceilings")
        summary |= await raw_ceilings(bench, sizes)
        step("end to end, 1 process")
        one = await end_to_end(bench, sizes, processes=1)
        step("end to end, 2 processes")
        two = await end_to_end(bench, sizes, processes=2)
        summary |= {
            "e2e_eps_1proc": one["eps"], "e2e_eps_2proc": two["eps"],
            "ratio_to_raw": round(one["eps"] / summary["raw_ceiling_eps"], 3),
            "scaling_2proc": round(two["eps"] / one["eps"], 2), "cpu_s_per_million": one["cpu_s_per_million"],
        }  # fmt: skip
        step("export")
        summary["export"] = await export(bench, sizes, without_eps=one["eps"])
        step("visibility latency")
        summary["latency_ms"] = await visibility_latency(bench, sizes, rate=one["eps"] / 2)
        step("plugin VM overhead")
        summary["vm_overhead"] = await trio.to_thread.run_sync(
            vm_overhead.measure, sizes.vm_events
        )  # runs its own trio
        step("person growth")
        summary["person_growth"] = await person_growth(bench, sizes)
        step("footprint")
        rss = await footprint(bench, sizes)
        summary["stack_rss_mb"] = rss["total"] if rss else None
        summary["stack_rss_by_process_mb"] = rss
        step("catch-up")
        summary["catchup"] = await catchup(bench, sizes)
        await bench.retire()  # nothing of the run is left on the broker (a real cluster's too)
    summary["machine"] = {"cores": os.cpu_count(), "python": sys.version.split()[0]}
    return summary


def step(name: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {name}", file=sys.stderr, flush=True)


def person_points(text: str) -> tuple[int, ...]:
    """`--persons`: person-table sizes for the person-growth curve, ascending, e.g. `10000,100000`."""
    try:
        points = tuple(int(part.replace("_", "")) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of whole numbers: {text!r}") from None
    if any(p <= 0 for p in points):
        raise argparse.ArgumentTypeError(f"person counts must be positive: {text!r}")
    if list(points) != sorted(set(points)):
        raise argparse.ArgumentTypeError(f"person counts must be ascending, without repeats: {text!r}")
    return points


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="every scenario, smaller (about 10 minutes)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results", help="where results go")
    parser.add_argument(
        "--persons", type=person_points, metavar="N,N,...",
        help="person-table sizes of the person-growth curve (default 10000,100000 quick, up to 1000000 full); "
        "10000000 is the optional long point: preloading it takes about ten minutes",
    )  # fmt: skip
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.persons:
        sizes = dataclasses.replace(sizes, person_points=args.persons)
    summary = run_on_stack(run_all, sizes, args.quick)
    for path in report.write(summary, args.out):
        print(path, file=sys.stderr)
    print(json.dumps({k: v for k, v in summary.items() if k != "latency_ms"} | {
        "latency_ms": {k: v for k, v in summary["latency_ms"].items() if k != "samples_ms"}}))  # fmt: skip
    return 0
