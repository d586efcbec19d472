"""The ingestion worker: one consumer of the ingestion topic, the pipeline, and a sink.

For each batch, in order (a checkpoint): run the pipeline (`prepare`); hand its rows to the sink
and flush it (durable); produce dead letters and any rows ClickHouse refused to the dead letter
topic and wait for the acks (`write`); only then does the consumer loop commit the batch's
offsets. The consumer overlaps one batch's `write` with the next batch's `prepare`.
"""

from __future__ import annotations

import datetime as dt

from plugin_server.core import logs, metrics
from plugin_server.ingestion.dead_letter import (
    REJECTED_BY_CLICKHOUSE,
    rejected_row_message,
)
from plugin_server.ingestion.event import Source
from plugin_server.ingestion.pipeline import BatchOutput, IngestionPipeline
from plugin_server.plugins.runtime import PluginRuntime
from plugin_server.storage.kafka.client import Message, Record
from plugin_server.storage.kafka.producer import KafkaProducer
from plugin_server.storage.sinks import Sink
from plugin_server.storage.tables import EVENTS_TABLE, Row

log = logs.get(__name__)


class IngestionHandler:
    """`handle(batch)` for the ingestion topic's BatchConsumer."""

    def __init__(
        self,
        *,
        pipeline: IngestionPipeline,
        sink: Sink,
        producer: KafkaProducer,
        dead_letter_topic: str,
        async_events: tuple[str, PluginRuntime] | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._sink = sink
        self._producer = producer
        self._dlq_topic = dead_letter_topic
        # (events topic, runtime): with the direct sink, the durable event rows of teams with
        # on_event / export_events plugins are produced there for the async handlers.
        self._async_events = async_events

    async def __call__(self, batch: list[Message]) -> None:
        await self.write(batch, await self.prepare(batch))

    async def prepare(self, batch: list[Message]) -> BatchOutput:
        """Stage 1: the pipeline (Postgres is written here; nothing goes to the sink yet)."""
        return await self._pipeline.process(batch)

    async def write(self, batch: list[Message], out: BatchOutput) -> None:
        """Stage 2: make the batch's rows and dead letters durable (retried as a whole)."""
        self._sink.reset()  # a retried write starts again from the batch's rows
        for source, row in out.rows:
            self._sink.add(row, topic=source.topic, partition=source.partition, offset=source.offset)
        rejected = await self._sink.flush()
        now = dt.datetime.now(dt.UTC)
        dead = [value for _, value in out.dead_letters] + [
            rejected_row_message(line=r.row.line, error=r.error, location="clickhouse_insert", at=now) for r in rejected
        ]
        await self._producer.send_batch(Record(self._dlq_topic, value) for value in dead)
        if self._async_events is not None:
            await self._producer.send_batch(self._async_records(out.rows))
        for confirm in out.on_durable:
            confirm()
        # Counted only now that the batch is durable, so a retried batch is not counted twice.
        out.count()
        metrics.MESSAGES_CONSUMED.inc(len(batch))
        metrics.EVENTS_INGESTED.inc(sum(1 for _, row in out.rows if row.table == "events") - len(rejected))
        for r in rejected:
            metrics.EVENTS_DEAD_LETTERED.labels(REJECTED_BY_CLICKHOUSE).inc()
            log.error("clickhouse refused a row", table=r.row.table, error=r.error)

    def _async_records(self, rows: list[tuple[Source, Row]]) -> list[Record]:
        if self._async_events is None:
            return []
        topic, runtime = self._async_events
        if not runtime.any_async():
            return []
        records = []
        for _, row in rows:
            if row.table == EVENTS_TABLE and row.team_id is not None and runtime.wants_async(row.team_id):
                records.append(Record(topic, row.line, row.key))
        return records
