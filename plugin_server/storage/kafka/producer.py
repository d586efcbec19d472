"""A batched producer: `send_batch` returns once every record is acknowledged."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import aiokafka

from plugin_server.storage.kafka.client import TRANSLATED, Record, bridged, started, translate
from plugin_server.storage.kafka.partitioner import partition_of

# Producer: wait for all in-sync replicas, so "acked" means durable; batch for up to 5 ms.
PRODUCER_OPTIONS = {"acks": "all", "linger_ms": 5, "max_batch_size": 1 << 20, "enable_idempotence": False}


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
            await bridged(self._send_all, records)
        except TRANSLATED as exc:
            raise translate(exc, "produce") from exc

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
            elif (chosen := sticky.get(topic)) is not None:
                partition = chosen
            else:
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

    async with started(make, "producer") as producer:
        yield KafkaProducer(producer)
