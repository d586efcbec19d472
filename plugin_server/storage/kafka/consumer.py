"""A consumer-group member: joined, getmany, commit (only explicitly), lag."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import aiokafka
import trio

from plugin_server.core.errors import ServiceUnavailable
from plugin_server.storage.kafka.client import (
    FETCH_MAX_PARTITION_BYTES,
    TRANSLATED,
    Message,
    bridged,
    started,
    translate,
)

# How long a member may wait for the group to give it its partitions (even none) before its start
# fails: a join waits for every other member to rejoin, which Kafka bounds by the rebalance timeout.
JOIN_TIMEOUT_SECONDS = 120.0


class _Joined(aiokafka.ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no types
    """Tells trio when the group has assigned this member its partitions (possibly none). aiokafka
    calls it in asyncio; the trio token hands the event to trio, from any context."""

    def __init__(self) -> None:
        self.event = trio.Event()
        self._token = trio.lowlevel.current_trio_token()

    async def on_partitions_revoked(self, revoked: object) -> None:
        pass

    async def on_partitions_assigned(self, assigned: object) -> None:
        self._token.run_sync_soon(self.event.set)


class KafkaConsumer:
    """A started consumer-group member. Offsets are committed only by `commit`."""

    def __init__(self, consumer: aiokafka.AIOKafkaConsumer, joined: _Joined) -> None:
        self._consumer = consumer
        self._joined = joined

    async def joined(self) -> set[tuple[str, int]]:
        """Wait until the group assigned this member its partitions (none, when the group has more
        members than partitions), within JOIN_TIMEOUT_SECONDS; returns the assignment."""
        with trio.move_on_after(JOIN_TIMEOUT_SECONDS):
            await self._joined.event.wait()
            return self.assignment()
        raise ServiceUnavailable("kafka", f"the consumer group gave no assignment within {JOIN_TIMEOUT_SECONDS}s")

    async def getmany(self, *, timeout_ms: int, max_records: int) -> list[Message]:
        """Up to `max_records` messages, in offset order within each partition."""
        try:
            batches = await bridged(self._consumer.getmany, timeout_ms=timeout_ms, max_records=max_records)
        except TRANSLATED as exc:
            raise translate(exc, "fetch") from exc
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
            await bridged(self._consumer.commit, tps)
        except TRANSLATED as exc:
            raise translate(exc, "commit") from exc

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
            return await bridged(measure)
        except TRANSLATED as exc:
            raise translate(exc, "lag") from exc


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
            bootstrap_servers=hosts,
            group_id=group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=max_partition_fetch_bytes,
        )

    joined = _Joined()

    async def subscribe(consumer: aiokafka.AIOKafkaConsumer) -> None:
        consumer.subscribe(topics=list(topics), listener=joined)

    async with started(make, "consumer") as consumer:
        try:
            await bridged(subscribe, consumer)
        except TRANSLATED as exc:
            raise translate(exc, "subscribe") from exc
        yield KafkaConsumer(consumer, joined)
