"""Throughput of the walking skeleton against a raw ceiling measured in the same run.

    python -m benchmarks.skeleton [--events 200000]

Starts the embedded stack (or uses DATABASE_URL, REDIS_URL, KAFKA_HOSTS, CLICKHOUSE_URL when all
are set), produces `--events` synthetic capture messages, then drains the same messages twice:
1. raw ceiling: Kafka consume -> JSON parse (orjson) -> ClickHouse insert, written as plainly and
   fast as the libraries allow (no team lookup, no validation, no timestamps);
2. the real server (`Server`, mode all, direct sink) on one process.
Prints one JSON object: events/s of each and their ratio. Absolute figures on a shared machine
are noise; the ratio is the figure to compare between runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import uuid

import orjson
import trio

from benchmarks.stack import run_on_stack
from plugin_server.app.config import Settings
from plugin_server.app.server import Server
from plugin_server.core import aio
from plugin_server.ops import synth
from plugin_server.storage.clickhouse import open_clickhouse
from plugin_server.storage.kafka.admin import ensure_topics
from plugin_server.storage.kafka.client import Record
from plugin_server.storage.kafka.consumer import open_consumer
from plugin_server.storage.kafka.producer import open_producer
from plugin_server.storage.migrations import migrate_clickhouse, migrate_postgres
from plugin_server.storage.postgres import open_postgres
from plugin_server.storage.teams import TeamStore

RAW_COLUMNS = ["uuid", "event", "properties", "timestamp", "team_id", "distinct_id", "_offset"]
PRODUCE_CHUNK = 10_000


async def produce(settings: Settings, token: str, events: int) -> float:
    started = time.perf_counter()
    messages = synth.generate(
        token=token, events=events, persons=max(1, events // 50), seed=1, now=dt.datetime.now(dt.UTC)
    )
    async with open_producer(hosts=settings.kafka_hosts, client_id="bench") as producer:
        while batch := [
            Record(settings.kafka_consumption_topic, m.value, m.key)
            for _, m in zip(range(PRODUCE_CHUNK), messages, strict=False)
        ]:
            await producer.send_batch(batch)
    return time.perf_counter() - started


async def raw_ceiling(settings: Settings, events: int, table: str) -> float:
    async with open_clickhouse(settings.clickhouse_url) as ch:
        await ch.command(f"CREATE TABLE {table} AS events")
        async with open_consumer(
            hosts=settings.kafka_hosts,
            topics=[settings.kafka_consumption_topic],
            group_id=f"raw-{table}",
            client_id="raw",
        ) as consumer:
            done, started = 0, None
            while done < events:
                batch = await consumer.getmany(timeout_ms=100, max_records=settings.ingestion_batch_size)
                if not batch:
                    continue
                started = started or time.perf_counter()
                lines = []
                for m in batch:
                    envelope = orjson.loads(m.value)
                    data = orjson.loads(envelope["data"])
                    lines.append(
                        orjson.dumps(
                            {
                                "uuid": envelope["uuid"],
                                "event": data["event"],
                                "properties": orjson.dumps(data.get("properties", {})).decode(),
                                "timestamp": envelope["now"][:26].replace("T", " ").rstrip("Z"),
                                "team_id": 1,
                                "distinct_id": str(envelope["distinct_id"]),
                                "_offset": m.offset,
                            }
                        )
                    )
                await ch.insert_json(table, RAW_COLUMNS, b"\n".join(lines), dedup_token=uuid.uuid4().hex)
                await consumer.commit({(m.topic, m.partition): m.offset + 1 for m in batch})
                done += len(batch)
    return events / (time.perf_counter() - started)


async def through_server(settings: Settings, events: int) -> float:
    """Events/s from the ingestion consumer's first committed batch to its last. The server is
    started with start_soon, not start: it reports ready only once every consumer group joined,
    by which time ingestion may be over."""
    server = Server(settings)

    def consumed() -> int:
        return sum(c.consumed for c in server.state.consumers if c.name == "ingestion")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.run)
        while (at_start := consumed()) == 0:
            await trio.sleep(0.001)
        started = time.perf_counter()
        while consumed() < events:
            await trio.sleep(0.005)
        elapsed = time.perf_counter() - started
        server.request_stop()
    if at_start >= events:
        raise RuntimeError("the drain was too fast to measure: one batch took every event")
    return (events - at_start) / elapsed


async def main(urls: dict[str, str], events: int) -> dict:
    run = uuid.uuid4().hex[:8]
    settings = Settings.from_env(
        {**urls, "KAFKA_CONSUMPTION_TOPIC": f"bench_{run}", "KAFKA_CONSUMER_GROUP": f"bench-{run}",
         "KAFKA_DEAD_LETTER_TOPIC": f"bench_dlq_{run}", "HTTP_PORT": "0", "LOG_LEVEL": "warning"}
    )  # fmt: skip
    async with aio.open_loop():
        async with open_postgres(settings.database_url, max_size=2) as pg:
            await migrate_postgres(pg)
            team = await TeamStore(pg=pg).create(f"bench-{run}")
        async with open_clickhouse(settings.clickhouse_url) as ch:
            await migrate_clickhouse(ch)
        await ensure_topics(
            hosts=settings.kafka_hosts,
            topics=[settings.kafka_consumption_topic, settings.kafka_dead_letter_topic],
            partitions=8,
        )
        produce_s = await produce(settings, team.api_token, events)
        raw = await raw_ceiling(settings, events, f"bench_raw_{run}")
        e2e = await through_server(settings, events)
    return {
        "events": events,
        "produce_eps": round(events / produce_s),
        "raw_ceiling_eps": round(raw),
        "e2e_eps_1proc": round(e2e),
        "ratio_to_raw": round(e2e / raw, 3),
        "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
    }


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    print(json.dumps(run_on_stack(main, args.events)))


if __name__ == "__main__":
    run()
