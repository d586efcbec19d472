"""Reads without a consumer group, so they never rebalance the running members and never commit:
a whole topic (the dead letter queue), end offsets, log ranges (lag), committed offsets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiokafka
import trio

from plugin_server.core.errors import ServiceUnavailable
from plugin_server.storage.kafka import client
from plugin_server.storage.kafka.client import (
    FETCH_MAX_PARTITION_BYTES,
    TRANSLATED,
    Message,
    bridged,
    partitions_of,
    started,
    translate,
)


async def topic_end_offsets(*, hosts: str, topic: str) -> dict[int, int]:
    """Per partition, the offset the next message will get (how many were ever written)."""

    def make() -> aiokafka.AIOKafkaConsumer:
        return aiokafka.AIOKafkaConsumer(bootstrap_servers=hosts, client_id="plugin-server-offsets")

    async def measure(consumer: aiokafka.AIOKafkaConsumer) -> dict[int, int]:
        tps = await partitions_of(consumer, topic)
        ends = await consumer.end_offsets(tps) if tps else {}
        return {tp.partition: offset for tp, offset in ends.items()}

    async with started(make, "offsets reader") as consumer:
        try:
            with trio.fail_after(client.START_TIMEOUT_SECONDS):
                return await bridged(measure, consumer)
        except trio.TooSlowError as exc:
            raise ServiceUnavailable("kafka", "end offsets timed out") from exc
        except TRANSLATED as exc:
            raise translate(exc, "end offsets") from exc


# Reading a whole topic (the dead letter queue): records per fetch, one bridge crossing each; how
# long one fetch waits for data; and how long a read may see no progress below the end offsets
# before it gives up instead of hanging (a partition whose leader is gone never catches up).
READ_BATCH = 5000
READ_POLL_MS = 500
READ_STALL_SECONDS = 30.0


async def read_topic(*, hosts: str, topic: str, max_messages: int | None = None) -> list[Message]:
    """The messages of `topic` from the beginning up to the end offsets measured at the start.

    No consumer group: every partition is assigned, nothing is committed, and the read ends at
    those offsets (messages produced meanwhile are not waited for). A topic that does not exist
    reads as empty. Ordered by partition, then offset; at most `max_messages`.

    A partition's end is raised once, to the high watermark of its first fetch response: tansu
    (the embedded broker) answers ListOffsets with the last record batch's base offset + 1, which
    would cut off the rest of that batch. On Kafka both agree, up to what arrived in between.
    """

    def make() -> aiokafka.AIOKafkaConsumer:
        return aiokafka.AIOKafkaConsumer(
            bootstrap_servers=hosts,
            client_id="plugin-server-reader",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=FETCH_MAX_PARTITION_BYTES,
        )

    async def assign(consumer: aiokafka.AIOKafkaConsumer) -> dict[aiokafka.TopicPartition, int]:
        tps = await partitions_of(consumer, topic)
        if not tps:
            return {}
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends: dict[aiokafka.TopicPartition, int] = await consumer.end_offsets(tps)
        return ends

    async def unread(
        consumer: aiokafka.AIOKafkaConsumer, ends: dict[aiokafka.TopicPartition, int]
    ) -> dict[aiokafka.TopicPartition, int]:
        left = {tp: end - await consumer.position(tp) for tp, end in ends.items()}
        return {tp: n for tp, n in left.items() if n > 0}

    async def fetch(
        consumer: aiokafka.AIOKafkaConsumer,
        ends: dict[aiokafka.TopicPartition, int],
        confirmed: set[aiokafka.TopicPartition],
        limit: int,
    ) -> tuple[list[Message], int]:
        """One fetch from the partitions not read to their end yet: (messages, how many remain)."""
        pending = await unread(consumer, ends)
        if pending:
            consumer.pause(*(tp for tp in ends if tp not in pending))  # no prefetching of finished ones
            batches = await consumer.getmany(*pending, timeout_ms=READ_POLL_MS, max_records=limit)
            for tp in pending.keys() - confirmed:
                if (highwater := consumer.highwater(tp)) is not None:
                    ends[tp] = max(ends[tp], highwater)
                    confirmed.add(tp)
            pending = await unread(consumer, ends)
        else:
            batches = {}
        messages = [
            Message(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp)
            for tp, records in batches.items()
            for m in records
            if m.offset < ends[tp]
        ]
        return messages, sum(pending.values())

    read: list[Message] = []
    async with started(make, "topic reader") as consumer:
        try:
            with trio.fail_after(client.START_TIMEOUT_SECONDS):
                ends = await bridged(assign, consumer)
            confirmed: set[aiokafka.TopicPartition] = set()
            remaining = sum(ends.values())  # non-zero while anything may be unread; exact after a fetch
            stalled_since = trio.current_time()
            while remaining and (max_messages is None or len(read) < max_messages):
                limit = READ_BATCH if max_messages is None else min(READ_BATCH, max_messages - len(read))
                messages, left = await bridged(fetch, consumer, ends, confirmed, limit)
                read.extend(messages)
                if messages or left < remaining:
                    stalled_since = trio.current_time()
                elif trio.current_time() - stalled_since > READ_STALL_SECONDS:
                    detail = f"reading {topic}: no progress for {READ_STALL_SECONDS}s, {left} unread"
                    raise ServiceUnavailable("kafka", detail)
                remaining = left
        except trio.TooSlowError as exc:
            raise ServiceUnavailable("kafka", f"assigning the partitions of {topic} timed out") from exc
        except TRANSLATED as exc:
            raise translate(exc, f"read {topic}") from exc
    read.sort(key=lambda m: (m.partition, m.offset))
    return read if max_messages is None else read[:max_messages]


# Consumer lag (`plugin-server status`). How long one high-watermark probe waits for the broker's
# fetch answer: it asks at the end of each partition, so a Kafka broker would otherwise hold the
# answer for its default fetch wait (500 ms) hoping for new data.
PROBE_FETCH_WAIT_MS = 100
PROBE_POLL_MS = 200
# How long the probes may take in all before the partitions not answered keep ListOffsets' end.
PROBE_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class LogRange:
    """The offsets a partition holds: [beginning, end); `end` is the offset the next message gets."""

    beginning: int
    end: int


async def log_ranges(*, hosts: str, topics: Sequence[str]) -> dict[tuple[str, int], LogRange]:
    """(topic, partition) -> LogRange, for every partition of `topics` (topics that do not exist
    have none). No consumer group: nothing is committed.

    The end is ListOffsets' answer raised to the high watermark of one fetch at that offset (see
    `read_topic`: tansu answers ListOffsets with the last batch's base offset + 1). On Kafka the
    fetch at the end returns no records, only the high watermark. A partition whose fetch does not
    answer in time keeps ListOffsets' end.
    """

    def make() -> aiokafka.AIOKafkaConsumer:
        return aiokafka.AIOKafkaConsumer(
            bootstrap_servers=hosts,
            client_id="plugin-server-status",
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=PROBE_FETCH_WAIT_MS,
            max_partition_fetch_bytes=FETCH_MAX_PARTITION_BYTES,
        )

    async def listed(consumer: aiokafka.AIOKafkaConsumer) -> dict[aiokafka.TopicPartition, LogRange]:
        tps = [tp for topic in dict.fromkeys(topics) for tp in await partitions_of(consumer, topic)]
        if not tps:
            return {}
        beginnings = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, ends[tp])
        return {tp: LogRange(beginnings[tp], ends[tp]) for tp in tps}

    async def probe(
        consumer: aiokafka.AIOKafkaConsumer, pending: list[aiokafka.TopicPartition]
    ) -> dict[aiokafka.TopicPartition, int]:
        """One poll; the high watermarks known so far of `pending`."""
        await consumer.getmany(*pending, timeout_ms=PROBE_POLL_MS, max_records=1)
        return {tp: hw for tp in pending if (hw := consumer.highwater(tp)) is not None}

    async with started(make, "offsets reader") as consumer:
        try:
            with trio.fail_after(client.START_TIMEOUT_SECONDS):
                ranges = await bridged(listed, consumer)
            with trio.move_on_after(PROBE_SECONDS):
                pending = list(ranges)
                while pending:
                    for tp, highwater in (await bridged(probe, consumer, pending)).items():
                        ranges[tp] = LogRange(ranges[tp].beginning, max(ranges[tp].end, highwater))
                        pending.remove(tp)
        except trio.TooSlowError as exc:
            raise ServiceUnavailable("kafka", "offsets timed out") from exc
        except TRANSLATED as exc:
            raise translate(exc, "offsets") from exc
    return {(tp.topic, tp.partition): r for tp, r in ranges.items()}


async def committed_offsets(
    *, hosts: str, group_id: str, partitions: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], int | None]:
    """(topic, partition) -> the offset `group_id` committed (the next one it reads), or None if it
    never committed there. One client for one read; `open_offsets_reader` keeps one open."""
    wanted = list(partitions)
    if not wanted:
        return {}
    async with open_offsets_reader(hosts=hosts, group_id=group_id) as reader:
        return await reader.committed(wanted)


class OffsetsReader:
    """Reads a group's committed offsets. Reads only: the client subscribes to nothing, so it
    never joins the group (no rebalance of the running members) and never commits."""

    def __init__(self, consumer: aiokafka.AIOKafkaConsumer, group_id: str) -> None:
        self._consumer = consumer
        self._group_id = group_id

    async def committed(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int | None]:
        wanted = [aiokafka.TopicPartition(t, p) for t, p in partitions]

        async def fetch(consumer: aiokafka.AIOKafkaConsumer) -> dict[tuple[str, int], int | None]:
            return {(tp.topic, tp.partition): await consumer.committed(tp) for tp in wanted}

        try:
            with trio.fail_after(client.START_TIMEOUT_SECONDS):
                return await bridged(fetch, self._consumer)
        except trio.TooSlowError as exc:
            raise ServiceUnavailable("kafka", f"committed offsets of {self._group_id} timed out") from exc
        except TRANSLATED as exc:
            raise translate(exc, f"committed offsets of {self._group_id}") from exc


@asynccontextmanager
async def open_offsets_reader(*, hosts: str, group_id: str) -> AsyncIterator[OffsetsReader]:
    """An OffsetsReader on one client, for callers that poll (a benchmark's progress)."""

    def make() -> aiokafka.AIOKafkaConsumer:
        return aiokafka.AIOKafkaConsumer(
            bootstrap_servers=hosts, client_id="plugin-server-status", group_id=group_id, enable_auto_commit=False
        )

    async with started(make, "offsets reader") as consumer:
        yield OffsetsReader(consumer, group_id)
