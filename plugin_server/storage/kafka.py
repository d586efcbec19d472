"""Kafka adapter: aiokafka behind a trio interface.

aiokafka is an asyncio library; every call here crosses the trio-asyncio bridge once per batch,
never once per message (a per-message crossing measured half the throughput). Clients are
created, started and stopped inside the asyncio loop, and always stopped in `finally`: an
unstopped aiokafka client makes trio-asyncio fail the whole run.

aiokafka's errors are translated into ours here and nowhere else.
"""

from __future__ import annotations

import asyncio
import random
import struct
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiokafka
import aiokafka.errors
import trio
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from trio_asyncio import aio_as_trio

from plugin_server.core.errors import ServiceUnavailable, StorageError

# Producer: wait for all in-sync replicas, so "acked" means durable; batch for up to 5 ms.
PRODUCER_OPTIONS = {"acks": "all", "linger_ms": 5, "max_batch_size": 1 << 20, "enable_idempotence": False}
# A single capture message may be large (PostHog allows ~1 MB); fetch up to 16 MB per partition.
FETCH_MAX_PARTITION_BYTES = 16 << 20
START_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Message:
    """One consumed Kafka message: what the pipeline needs and where it came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class Record:
    """One message to produce."""

    topic: str
    value: bytes
    key: bytes | None = None


class CommitFailed(Exception):
    """The group rebalanced before we could commit; the new owner re-reads those messages."""


def _translate(exc: BaseException, what: str) -> Exception:
    if isinstance(exc, aiokafka.errors.CommitFailedError | aiokafka.errors.RebalanceInProgressError):
        return CommitFailed(str(exc))
    if isinstance(exc, aiokafka.errors.KafkaError) and not getattr(exc, "retriable", False):
        if isinstance(exc, aiokafka.errors.KafkaConnectionError | aiokafka.errors.KafkaTimeoutError):
            return ServiceUnavailable("kafka", f"{what}: {exc!r}")
        return StorageError("kafka", f"{what}: {exc!r}")
    return ServiceUnavailable("kafka", f"{what}: {exc!r}")


_TRANSLATED = (aiokafka.errors.KafkaError, OSError, asyncio.TimeoutError)


class KafkaConsumer:
    """A started consumer-group member. Offsets are committed only by `commit`."""

    def __init__(self, consumer: aiokafka.AIOKafkaConsumer) -> None:
        self._consumer = consumer

    async def getmany(self, *, timeout_ms: int, max_records: int) -> list[Message]:
        """Up to `max_records` messages, in offset order within each partition."""
        try:
            batches = await aio_as_trio(self._consumer.getmany)(timeout_ms=timeout_ms, max_records=max_records)
        except _TRANSLATED as exc:
            raise _translate(exc, "fetch") from exc
        return [
            Message(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp)
            for records in batches.values()
            for m in records
        ]

    async def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        """Commit `offsets`: (topic, partition) -> the next offset to read."""
        if not offsets:
            return
        tps = {aiokafka.TopicPartition(t, p): o for (t, p), o in offsets.items()}
        try:
            await aio_as_trio(self._consumer.commit)(tps)
        except _TRANSLATED as exc:
            raise _translate(exc, "commit") from exc

    def assignment(self) -> set[tuple[str, int]]:
        return {(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    async def lag(self) -> dict[tuple[str, int], int]:
        """Messages not yet consumed, per assigned partition (end offset minus position)."""

        async def measure() -> dict[tuple[str, int], int]:
            tps = list(self._consumer.assignment())
            if not tps:
                return {}
            ends = await self._consumer.end_offsets(tps)
            return {(tp.topic, tp.partition): max(0, ends[tp] - await self._consumer.position(tp)) for tp in tps}

        try:
            return await aio_as_trio(measure)()
        except _TRANSLATED as exc:
            raise _translate(exc, "lag") from exc


@asynccontextmanager
async def _started(make: Callable[[], Any], what: str) -> AsyncIterator[Any]:
    """An aiokafka client made and started inside asyncio, and always stopped on the way out."""

    async def start() -> Any:
        client = make()
        try:
            await client.start()
        except BaseException:
            await client.stop()
            raise
        return client

    try:
        with trio.fail_after(START_TIMEOUT_SECONDS):
            client = await aio_as_trio(start)()
    except trio.TooSlowError as exc:
        raise ServiceUnavailable("kafka", f"{what} did not start within {START_TIMEOUT_SECONDS}s") from exc
    except _TRANSLATED as exc:
        raise _translate(exc, f"{what} start") from exc
    try:
        yield client
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(10):
            await aio_as_trio(client.stop)()


@asynccontextmanager
async def open_consumer(
    *,
    hosts: str,
    topics: Sequence[str],
    group_id: str,
    client_id: str,
    max_partition_fetch_bytes: int = FETCH_MAX_PARTITION_BYTES,
) -> AsyncIterator[KafkaConsumer]:
    """A consumer-group member subscribed to `topics`; offsets are committed only by `commit`."""

    def make() -> aiokafka.AIOKafkaConsumer:
        return aiokafka.AIOKafkaConsumer(
            *topics,
            bootstrap_servers=hosts,
            group_id=group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=max_partition_fetch_bytes,
        )

    async with _started(make, "consumer") as consumer:
        yield KafkaConsumer(consumer)


_M = 0x5BD1E995  # murmur2's mixing constant
_MASK = 0xFFFFFFFF
_WORDS = [struct.Struct(f"<{n}I") for n in range(64)]  # keys up to 255 bytes: one unpack each


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (Java's `Utils.murmur2`, aiokafka's `partitioner.murmur2`), the same
    result for every input, in half the time: the 4-byte words are read by one `struct` call
    instead of byte by byte. Unit tests compare it with aiokafka's over random keys."""
    length = len(data)
    h = 0x9747B28C ^ length
    n = length >> 2
    for k in (_WORDS[n] if n < len(_WORDS) else struct.Struct(f"<{n}I")).unpack_from(data):
        k = (k * _M) & _MASK
        k = ((k ^ (k >> 24)) * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        at = length - tail
        if tail == 3:
            h ^= data[at + 2] << 16
        if tail >= 2:
            h ^= data[at + 1] << 8
        h = ((h ^ data[at]) * _M) & _MASK
    h = ((h ^ (h >> 13)) * _M) & _MASK
    return h ^ (h >> 15)


def partition_of(key: bytes, partitions: Sequence[int]) -> int:
    """Where the default partitioner (aiokafka's, and Java's) puts `key` among `partitions`, sorted."""
    return partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]


class KafkaProducer:
    """A started producer. `send_batch` returns once every record is acknowledged.

    Records are appended to one aiokafka `BatchBuilder` per partition (its record encoding is C)
    and each batch is submitted once, instead of `send()` per record, whose futures and
    accumulator bookkeeping cost three times as much CPU per record (36 against 12 µs for
    1 KB rows, measured on the embedded broker). Partitions are chosen as aiokafka's default
    partitioner does: murmur2 of the key, so a key lands where Java clients put it; records
    without a key go to one partition per call and topic (sticky), not one each.
    """

    def __init__(self, producer: aiokafka.AIOKafkaProducer) -> None:
        self._producer = producer

    async def send_batch(self, records: Iterable[Record]) -> None:
        records = list(records)
        if not records:
            return
        try:
            await aio_as_trio(self._send_all)(records)
        except _TRANSLATED as exc:
            raise _translate(exc, "produce") from exc

    async def _send_all(self, records: list[Record]) -> None:
        producer = self._producer
        partitions: dict[str, list[int]] = {}  # topic -> its partitions, sorted
        sticky: dict[str, int] = {}  # topic -> the partition of its keyless records
        builders: dict[tuple[str, int], Any] = {}
        futures = []
        for record in records:
            topic = record.topic
            known = partitions.get(topic)
            if known is None:
                known = partitions[topic] = sorted(await producer.partitions_for(topic))
            if record.key is not None:
                partition = partition_of(record.key, known)
            elif (partition := sticky.get(topic)) is None:
                partition = sticky[topic] = random.choice(known)
            builder = builders.get((topic, partition))
            if builder is not None and builder.append(key=record.key, value=record.value, timestamp=None) is not None:
                continue
            if builder is not None:  # full: submit it, and start the next with this record
                builder.close()
                futures.append(await producer.send_batch(builder, topic, partition=partition))
            builder = builders[topic, partition] = producer.create_batch()
            builder.append(key=record.key, value=record.value, timestamp=None)  # an empty batch takes any one record
        for (topic, partition), builder in builders.items():
            builder.close()
            futures.append(await producer.send_batch(builder, topic, partition=partition))
        await asyncio.gather(*futures)


@asynccontextmanager
async def open_producer(*, hosts: str, client_id: str) -> AsyncIterator[KafkaProducer]:
    def make() -> aiokafka.AIOKafkaProducer:
        return aiokafka.AIOKafkaProducer(bootstrap_servers=hosts, client_id=client_id, **PRODUCER_OPTIONS)

    async with _started(make, "producer") as producer:
        yield KafkaProducer(producer)


async def _admin(hosts: str, what: str, operation: Callable[[AIOKafkaAdminClient], Any]) -> Any:
    """`await operation(admin)` with a started admin client, always closed, within the start deadline."""

    async def run() -> Any:
        admin = AIOKafkaAdminClient(bootstrap_servers=hosts, client_id="plugin-server-admin")
        await admin.start()
        try:
            return await operation(admin)
        finally:
            await admin.close()

    try:
        with trio.fail_after(START_TIMEOUT_SECONDS):
            return await aio_as_trio(run)()
    except trio.TooSlowError as exc:
        raise ServiceUnavailable("kafka", f"{what} timed out") from exc
    except _TRANSLATED as exc:
        raise _translate(exc, what) from exc


async def ensure_topics(*, hosts: str, topics: Sequence[str], partitions: int) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""

    async def create(admin: AIOKafkaAdminClient) -> list[str]:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            await admin.create_topics(
                [NewTopic(name=t, num_partitions=partitions, replication_factor=1) for t in missing]
            )
        return missing

    return await _admin(hosts, "create topics", create)


async def delete_topics(*, hosts: str, topics: Sequence[str]) -> list[str]:
    """Delete those of `topics` that exist, and their messages; returns the names deleted."""

    async def delete(admin: AIOKafkaAdminClient) -> list[str]:
        existing = set(await admin.list_topics())
        present = [t for t in topics if t in existing]
        if present:
            await admin.delete_topics(present)
        return present

    return await _admin(hosts, "delete topics", delete)


async def _partitions(consumer: aiokafka.AIOKafkaConsumer, topic: str) -> list[aiokafka.TopicPartition]:
    """Every partition of `topic` (none if it does not exist), asked of the cluster's metadata:
    a consumer without a subscription knows no topics of its own. asyncio side."""
    metadata = await consumer._client.fetch_all_metadata()
    return [aiokafka.TopicPartition(topic, p) for p in sorted(metadata.partitions_for_topic(topic) or ())]


async def topic_end_offsets(*, hosts: str, topic: str) -> dict[int, int]:
    """Per partition, the offset the next message will get (how many were ever written)."""

    def make() -> aiokafka.AIOKafkaConsumer:
        return aiokafka.AIOKafkaConsumer(bootstrap_servers=hosts, client_id="plugin-server-offsets")

    async def measure(consumer: aiokafka.AIOKafkaConsumer) -> dict[int, int]:
        tps = await _partitions(consumer, topic)
        ends = await consumer.end_offsets(tps) if tps else {}
        return {tp.partition: offset for tp, offset in ends.items()}

    async with _started(make, "offsets reader") as consumer:
        try:
            with trio.fail_after(START_TIMEOUT_SECONDS):
                return await aio_as_trio(measure)(consumer)
        except trio.TooSlowError as exc:
            raise ServiceUnavailable("kafka", "end offsets timed out") from exc
        except _TRANSLATED as exc:
            raise _translate(exc, "end offsets") from exc


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
        tps = await _partitions(consumer, topic)
        if not tps:
            return {}
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        return await consumer.end_offsets(tps)

    async def unread(consumer: aiokafka.AIOKafkaConsumer, ends: dict) -> dict[aiokafka.TopicPartition, int]:
        left = {tp: end - await consumer.position(tp) for tp, end in ends.items()}
        return {tp: n for tp, n in left.items() if n > 0}

    async def fetch(
        consumer: aiokafka.AIOKafkaConsumer, ends: dict, confirmed: set, limit: int
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
    async with _started(make, "topic reader") as consumer:
        try:
            with trio.fail_after(START_TIMEOUT_SECONDS):
                ends = await aio_as_trio(assign)(consumer)
            confirmed: set[aiokafka.TopicPartition] = set()
            remaining = sum(ends.values())  # non-zero while anything may be unread; exact after a fetch
            stalled_since = trio.current_time()
            while remaining and (max_messages is None or len(read) < max_messages):
                limit = READ_BATCH if max_messages is None else min(READ_BATCH, max_messages - len(read))
                messages, left = await aio_as_trio(fetch)(consumer, ends, confirmed, limit)
                read.extend(messages)
                if messages or left < remaining:
                    stalled_since = trio.current_time()
                elif trio.current_time() - stalled_since > READ_STALL_SECONDS:
                    detail = f"reading {topic}: no progress for {READ_STALL_SECONDS}s, {left} unread"
                    raise ServiceUnavailable("kafka", detail)
                remaining = left
        except trio.TooSlowError as exc:
            raise ServiceUnavailable("kafka", f"assigning the partitions of {topic} timed out") from exc
        except _TRANSLATED as exc:
            raise _translate(exc, f"read {topic}") from exc
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
        tps = [tp for topic in dict.fromkeys(topics) for tp in await _partitions(consumer, topic)]
        if not tps:
            return {}
        beginnings = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, ends[tp])
        return {tp: LogRange(beginnings[tp], ends[tp]) for tp in tps}

    async def probe(consumer: aiokafka.AIOKafkaConsumer, pending: list[aiokafka.TopicPartition]) -> dict:
        """One poll; the high watermarks known so far of `pending`."""
        await consumer.getmany(*pending, timeout_ms=PROBE_POLL_MS, max_records=1)
        return {tp: hw for tp in pending if (hw := consumer.highwater(tp)) is not None}

    async with _started(make, "offsets reader") as consumer:
        try:
            with trio.fail_after(START_TIMEOUT_SECONDS):
                ranges = await aio_as_trio(listed)(consumer)
            with trio.move_on_after(PROBE_SECONDS):
                pending = list(ranges)
                while pending:
                    for tp, highwater in (await aio_as_trio(probe)(consumer, pending)).items():
                        ranges[tp] = LogRange(ranges[tp].beginning, max(ranges[tp].end, highwater))
                        pending.remove(tp)
        except trio.TooSlowError as exc:
            raise ServiceUnavailable("kafka", "offsets timed out") from exc
        except _TRANSLATED as exc:
            raise _translate(exc, "offsets") from exc
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
            with trio.fail_after(START_TIMEOUT_SECONDS):
                return await aio_as_trio(fetch)(self._consumer)
        except trio.TooSlowError as exc:
            raise ServiceUnavailable("kafka", f"committed offsets of {self._group_id} timed out") from exc
        except _TRANSLATED as exc:
            raise _translate(exc, f"committed offsets of {self._group_id}") from exc


@asynccontextmanager
async def open_offsets_reader(*, hosts: str, group_id: str) -> AsyncIterator[OffsetsReader]:
    """An OffsetsReader on one client, for callers that poll (a benchmark's progress)."""

    def make() -> aiokafka.AIOKafkaConsumer:
        return aiokafka.AIOKafkaConsumer(
            bootstrap_servers=hosts, client_id="plugin-server-status", group_id=group_id, enable_auto_commit=False
        )

    async with _started(make, "offsets reader") as consumer:
        yield OffsetsReader(consumer, group_id)
