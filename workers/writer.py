"""The ClickHouse writer: consumes the row topics the Kafka sink produces and inserts them.

Each message value is already one JSONEachRow line (built by the ingestion worker), so the
writer only joins lines into insert blocks: no parsing. It is a BatchConsumer handler; offsets
are committed only after ClickHouse accepted the insert, and inserts carry a deduplication token
made from the topic partitions and offsets, so a retried batch is written once.
"""

from __future__ import annotations

import datetime as dt

from plugin_server.core import logs, metrics
from plugin_server.ingestion.dead_letter import (
    REJECTED_BY_CLICKHOUSE,
    rejected_row_message,
)
from plugin_server.storage.kafka.client import Message, Record
from plugin_server.storage.kafka.producer import KafkaProducer
from plugin_server.storage.sinks import DirectSink
from plugin_server.storage.tables import Row

log = logs.get(__name__)


class WriterHandler:
    def __init__(
        self, *, sink: DirectSink, tables: dict[str, str], producer: KafkaProducer, dead_letter_topic: str
    ) -> None:
        self._sink = sink
        self._tables = tables  # topic -> table
        self._producer = producer
        self._dlq_topic = dead_letter_topic

    async def __call__(self, batch: list[Message]) -> None:
        self._sink.reset()  # a retried batch starts again from its messages
        for m in batch:
            if m.value:
                self._sink.add(
                    Row(self._tables[m.topic], m.value, m.key), topic=m.topic, partition=m.partition, offset=m.offset
                )
        rejected = await self._sink.flush()
        now = dt.datetime.now(dt.UTC)
        await self._producer.send_batch(
            Record(
                self._dlq_topic,
                rejected_row_message(line=r.row.line, error=r.error, location="clickhouse_writer", at=now),
            )
            for r in rejected
        )
        for r in rejected:
            metrics.EVENTS_DEAD_LETTERED.labels(REJECTED_BY_CLICKHOUSE).inc()
            log.error("clickhouse refused a row", table=r.row.table, error=r.error)
