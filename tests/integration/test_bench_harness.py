"""The benchmark harness on the session's real services, at a small size: the export scenario
hands every event to the plugin, and a drain that cannot finish ends with an error instead of
hanging the benchmark."""

from __future__ import annotations

import json

import pytest
import trio

from benchmarks import run
from benchmarks.run import Bench, Sizes, messages_for
from plugin_server.storage.kafka.admin import delete_topics, ensure_topics

EVENTS = 3_000  # two full batches: enough for a measurable rate


def bench_for(services) -> Bench:
    return Bench({
        "DATABASE_URL": services.database_url, "REDIS_URL": services.redis_url,
        "KAFKA_HOSTS": services.kafka_hosts, "CLICKHOUSE_URL": services.clickhouse_url,
    })  # fmt: skip


def sizes(events: int) -> Sizes:
    return Sizes(
        throughput=events,
        latency_seconds=1,
        person_points=(),
        person_events=0,
        footprint_seconds=1,
        catchup=0,
        vm_events=0,
    )


async def test_the_export_scenario_hands_every_event_to_the_plugin(aio, services):
    bench = bench_for(services)
    await bench.migrate()
    result = await run.export(bench, sizes(EVENTS), without_eps=1_000.0)
    assert result["events"] == EVENTS
    assert result["exported"] == EVENTS  # at least once; no redelivery in a clean run
    json.dumps(result)  # goes into summary.json as it is (a Decimal from Postgres would not)
    assert result["eps"] > 0
    assert result["ratio_to_e2e"] == round(result["eps"] / 1_000.0, 3)


async def test_a_drain_that_cannot_finish_raises_at_its_deadline(aio, services, monkeypatch):
    monkeypatch.setattr(run, "drain_deadline", lambda events: 15.0)
    bench = bench_for(services)
    await bench.migrate()
    settings, team = await bench.world("deadline")
    await bench.produce(settings, messages_for(team.api_token, 100, seed=1))
    with pytest.raises(trio.TooSlowError):
        await bench.drain(settings, team.id, 200)  # half of them will never come


async def test_each_scenario_deletes_the_topics_of_the_one_before(aio, services):
    bench = bench_for(services)
    first, _ = await bench.world("first")
    first_topics = list(bench.topics)
    second, _ = await bench.world("second")
    assert first.kafka_consumption_topic in first_topics and second.kafka_consumption_topic in bench.topics
    # deleted already: asking again deletes nothing, and creating them makes them anew
    assert await delete_topics(hosts=services.kafka_hosts, topics=first_topics) == []
    await bench.retire()
    assert bench.topics == []
    assert await ensure_topics(hosts=services.kafka_hosts, topics=[second.kafka_consumption_topic], partitions=1) == [
        second.kafka_consumption_topic
    ]
    await delete_topics(hosts=services.kafka_hosts, topics=[second.kafka_consumption_topic])
