"""`dlq list` and `dlq replay` against real Kafka and Postgres: filters, exactly-once replay."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import Counter

import pytest
import trio

from plugin_server.core.errors import ServiceUnavailable
from plugin_server.ingestion.dead_letter import (
    dead_letter_message,
    rejected_row_message,
)
from plugin_server.ingestion.event import Source
from plugin_server.ingestion.results import DeadLetter
from plugin_server.ops import dlq
from plugin_server.storage.kafka.admin import ensure_topics
from plugin_server.storage.kafka.client import Record
from plugin_server.storage.kafka.producer import KafkaProducer, open_producer
from plugin_server.storage.kafka.reader import read_topic
from plugin_server.storage.migrations import migrate_postgres
from plugin_server.storage.postgres import open_postgres

NOW = dt.datetime.now(dt.UTC)
RECENT = NOW - dt.timedelta(hours=1)
OLD = NOW - dt.timedelta(days=3)


def capture(token: str = "phc_gone") -> bytes:
    return json.dumps(
        {"token": token, "distinct_id": f"d-{uuid.uuid4().hex[:6]}", "uuid": str(uuid.uuid4()), "data": "{}"}
    ).encode()


def letter(raw: bytes | None, *, reason: str = "unknown_token", at: dt.datetime = RECENT, offset: int = 0) -> bytes:
    source = Source("events_plugin_ingestion", 0, offset, 0)
    return dead_letter_message(raw=raw, source=source, result=DeadLetter(reason, "why"), location="teams", at=at)


async def prepare(settings, letters: list[bytes]) -> None:
    async with open_postgres(settings.database_url, max_size=1) as pg:
        await migrate_postgres(pg)
    topics = [settings.kafka_dead_letter_topic, settings.kafka_consumption_topic]
    await ensure_topics(hosts=settings.kafka_hosts, topics=topics, partitions=2)
    async with open_producer(hosts=settings.kafka_hosts, client_id="test") as producer:
        await producer.send_batch(Record(settings.kafka_dead_letter_topic, value) for value in letters)


async def ingested(settings) -> list:
    return await read_topic(hosts=settings.kafka_hosts, topic=settings.kafka_consumption_topic)


async def test_read_topic_reads_to_the_end_measured_at_start_and_stops(aio, settings):
    with trio.fail_after(60):
        assert await read_topic(hosts=settings.kafka_hosts, topic=f"{settings.kafka_dead_letter_topic}_none") == []
        await prepare(settings, [f"m{i}".encode() for i in range(30)])
        read = await read_topic(hosts=settings.kafka_hosts, topic=settings.kafka_dead_letter_topic)
        assert sorted(m.value for m in read) == sorted(f"m{i}".encode() for i in range(30))
        assert read == sorted(read, key=lambda m: (m.partition, m.offset))
        first = await read_topic(hosts=settings.kafka_hosts, topic=settings.kafka_dead_letter_topic, max_messages=7)
        assert len(first) == 7 and all(m in read for m in first)


async def test_list_shows_every_dead_letter_and_filters_them(aio, settings):
    payloads = [capture() for _ in range(3)]
    letters = [
        *(letter(p) for p in payloads),
        letter(b"{oops", reason="invalid_json"),
        letter(capture(), at=OLD),
        rejected_row_message(line=b'{"uuid": "x"}', error="Cannot parse input", location="sink", at=RECENT),
    ]
    with trio.fail_after(60):
        await prepare(settings, letters)
        lines = await dlq.list_dead_letters(settings)
        assert len(lines) == 6 and not any(line["replayed"] for line in lines)
        assert [(line["dlq_partition"], line["dlq_offset"]) for line in lines] == sorted(
            (line["dlq_partition"], line["dlq_offset"]) for line in lines
        )
        assert dlq.list_summary(lines) == {
            "listed": 6,
            "by_reason": {"clickhouse_rejected": 1, "invalid_json": 1, "unknown_token": 4},
        }
        assert {line["error_timestamp"] for line in lines} == {
            RECENT.strftime("%Y-%m-%d %H:%M:%S"),
            OLD.strftime("%Y-%m-%d %H:%M:%S"),
        }
        assert set(lines[0]) == {
            "dlq_partition", "dlq_offset", "reason", "error", "error_timestamp", "event_uuid", "team_id", "event",
            "distinct_id", "kafka_topic", "kafka_partition", "kafka_offset", "replayed",
        }  # fmt: skip

        two_days = dlq.parse_since("2d", now=dt.datetime.now(dt.UTC))
        assert len(await dlq.list_dead_letters(settings, since=two_days)) == 5
        assert len(await dlq.list_dead_letters(settings, reason="unknown_token")) == 4
        assert len(await dlq.list_dead_letters(settings, reason="unknown_token", since=two_days)) == 3
        assert await dlq.list_dead_letters(settings, reason="no_such_reason") == []
        assert len(await dlq.list_dead_letters(settings, limit=2)) == 2


async def test_replay_produces_each_payload_once_across_runs(aio, settings):
    payloads = [capture() for _ in range(4)]
    rejected = rejected_row_message(line=b'{"uuid": "x"}', error="Cannot parse input", location="sink", at=RECENT)
    letters = [
        *(letter(p) for p in payloads),
        letter(b"{oops", reason="invalid_json"),
        letter(b"", reason="empty_message"),
        rejected,
    ]
    with trio.fail_after(90):
        await prepare(settings, letters)

        dry = await dlq.replay(settings, dry_run=True)
        assert dry == {"replayed": 5, "already_replayed": 0, "not_replayable": 2, "dry_run": True}
        assert await ingested(settings) == []

        first = await dlq.replay(settings, reason="unknown_token")
        assert first == {"replayed": 4, "already_replayed": 0, "not_replayable": 0, "dry_run": False}
        second = await dlq.replay(settings)
        assert second == {"replayed": 1, "already_replayed": 4, "not_replayable": 2, "dry_run": False}
        third = await dlq.replay(settings)
        assert third == {"replayed": 0, "already_replayed": 5, "not_replayable": 2, "dry_run": False}
        assert await dlq.replay(settings, dry_run=True) == dict(third, dry_run=True)

        produced = await ingested(settings)
        assert Counter(m.value for m in produced) == Counter([*payloads, b"{oops"])  # once each; no ClickHouse row
        keys = {m.value: m.key for m in produced}
        for payload in payloads:
            envelope = json.loads(payload)
            assert keys[payload] == f"{envelope['token']}:{envelope['distinct_id']}".encode()
        assert keys[b"{oops"] is None

        lines = await dlq.list_dead_letters(settings)
        assert {line["reason"]: line["replayed"] for line in lines} == {
            "unknown_token": True, "invalid_json": True, "empty_message": False, "clickhouse_rejected": False,
        }  # fmt: skip


async def test_concurrent_replays_claim_disjoint_sets(aio, settings):
    payloads = [capture() for _ in range(60)]
    results: list[dict] = []
    with trio.fail_after(90):
        await prepare(settings, [letter(p) for p in payloads])

        async def run() -> None:
            results.append(await dlq.replay(settings, chunk_size=7))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            nursery.start_soon(run)
        assert sum(r["replayed"] for r in results) == 60
        assert all(r["replayed"] + r["already_replayed"] == 60 for r in results)
        assert Counter(m.value for m in await ingested(settings)) == Counter(payloads)


async def test_a_failed_produce_claims_nothing(aio, settings, monkeypatch):
    payloads = [capture() for _ in range(5)]
    real_send = KafkaProducer.send_batch
    calls = []

    async def failing_once(self, records) -> None:
        records = list(records)
        calls.append(len(records))
        if len(calls) == 2:  # the second chunk: the first is committed already
            raise ServiceUnavailable("kafka", "produce: broker gone")
        await real_send(self, records)

    with trio.fail_after(90):
        await prepare(settings, [letter(p) for p in payloads])
        monkeypatch.setattr(KafkaProducer, "send_batch", failing_once)
        with pytest.raises(ServiceUnavailable, match="broker gone"):
            await dlq.replay(settings, chunk_size=2)
        assert await dlq.replay(settings, dry_run=True) == {
            "replayed": 3, "already_replayed": 2, "not_replayable": 0, "dry_run": True,
        }  # fmt: skip
        assert await dlq.replay(settings, chunk_size=2) == {
            "replayed": 3, "already_replayed": 2, "not_replayable": 0, "dry_run": False,
        }  # fmt: skip
        assert Counter(m.value for m in await ingested(settings)) == Counter(payloads)
