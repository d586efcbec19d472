"""A consumer-group member: getmany, commit (only explicitly), lag."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import aiokafka
from trio_asyncio import aio_as_trio

from plugin_server.storage.kafka.client import (
    FETCH_MAX_PARTITION_BYTES,
    TRANSLATED,
    Message,
    started,
    translate,
)


class KafkaConsumer:
    """A started consumer-group member. Offsets are committed only by `commit`."""

    def __init__(self, consumer: aiokafka.AIOKafkaConsumer) -> None:
        self._consumer = consumer

    async def getmany(self, *, timeout_ms: int, max_records: int) -> list[Message]:
        """Up to `max_records` messages, in offset order within each partition."""
        try:
            batches = await aio_as_trio(self._consumer.getmany)(timeout_ms=timeout_ms, max_records=max_records)
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
            await aio_as_trio(self._consumer.commit)(tps)
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
            return await aio_as_trio(measure)()
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
            *topics,
            bootstrap_servers=hosts,
            group_id=group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=max_partition_fetch_bytes,
        )

    async with started(make, "consumer") as consumer:
        yield KafkaConsumer(consumer)
