"""Sinks: where a batch's ClickHouse rows go before its input offsets may be committed.

One contract, two implementations (docs/ARCHITECTURE.md says why):
- `DirectSink` inserts into ClickHouse; durable = ClickHouse acknowledged the insert.
- `KafkaSink` produces rows to PostHog's topics; durable = the producer was acked. The writer
  (workers/writer.py) or ClickHouse's Kafka engine takes them from there.

`add` buffers; `flush` makes everything added durable or raises. A failed flush keeps its rows,
so calling `flush` again retries the same rows; the direct sink's inserts carry a deterministic
`insert_deduplication_token` (table and input offsets), so a retry that ClickHouse already applied
is not applied twice. A handler that retries a whole batch calls `reset` first.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Protocol

from plugin_server.core import metrics
from plugin_server.storage.clickhouse import ClickHouse, RowsRejected
from plugin_server.storage.kafka.client import Record
from plugin_server.storage.kafka.producer import KafkaProducer
from plugin_server.storage.tables import COLUMNS, EVENTS_TABLE, Row


@dataclass(frozen=True, slots=True)
class Rejected:
    """A row ClickHouse refused for its content (not for its own state): it goes to the DLQ."""

    row: Row
    error: str


class Sink(Protocol):
    name: str

    def add(self, row: Row, *, topic: str, partition: int, offset: int) -> None: ...

    async def flush(self) -> list[Rejected]: ...

    def reset(self) -> None:
        """Forget rows not yet flushed (a retried batch adds them again)."""


class _Pending:
    """Rows of one table with the input positions they came from."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.positions: dict[tuple[str, int], list[int]] = {}

    def add(self, row: Row, topic: str, partition: int, offset: int) -> None:
        self.rows.append(row)
        span = self.positions.get((topic, partition))
        if span is None:
            self.positions[(topic, partition)] = [offset, offset]
        else:
            span[0] = min(span[0], offset)
            span[1] = max(span[1], offset)


def dedup_token(table: str, positions: dict[tuple[str, int], list[int]], part: str = "") -> str:
    """The same table and input ranges give the same token, whichever process retries."""
    spans = ",".join(f"{t}:{p}:{lo}-{hi}" for (t, p), (lo, hi) in sorted(positions.items()))
    return hashlib.sha256(f"{table}|{spans}|{part}".encode()).hexdigest()


def _content_part(table: str, rows: list[Row]) -> str:
    """Event rows are the same on a retry (a uuid is an event), so their input offsets identify
    them. Person rows are not: a retried batch may carry newer versions, which must not be
    dropped as duplicates of the first attempt, so their token also covers their content."""
    if table == EVENTS_TABLE:
        return ""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(row.line)
    return digest.hexdigest()


class DirectSink:
    name = "direct"

    def __init__(self, *, clickhouse: ClickHouse) -> None:
        self._ch = clickhouse
        self._pending: dict[str, _Pending] = defaultdict(_Pending)

    def add(self, row: Row, *, topic: str, partition: int, offset: int) -> None:
        self._pending[row.table].add(row, topic, partition, offset)

    def reset(self) -> None:
        self._pending.clear()

    async def flush(self) -> list[Rejected]:
        rejected: list[Rejected] = []
        for table in list(self._pending):
            pending = self._pending[table]
            started = time.perf_counter()
            token = dedup_token(table, pending.positions, _content_part(table, pending.rows))
            rejected.extend(await self._insert(table, pending.rows, token))
            metrics.SINK_FLUSH_SECONDS.labels(self.name).observe(time.perf_counter() - started)
            metrics.SINK_ROWS.labels(self.name, table).inc(len(pending.rows))
            del self._pending[table]  # only once durable: a failed flush keeps the rows for a retry
        return rejected

    async def _insert(self, table: str, rows: list[Row], token: str) -> list[Rejected]:
        """Insert; if ClickHouse refuses the block's content, bisect to find the refused rows.
        Any other failure (ServiceUnavailable) propagates: the batch waits and retries."""
        try:
            await self._ch.insert_json(table, COLUMNS[table], b"\n".join(r.line for r in rows), dedup_token=token)
            return []
        except RowsRejected as exc:
            if len(rows) == 1:
                return [Rejected(rows[0], str(exc))]
        half = len(rows) // 2
        return await self._insert(table, rows[:half], token + ":a") + await self._insert(
            table, rows[half:], token + ":b"
        )


class KafkaSink:
    name = "kafka"

    def __init__(self, *, producer: KafkaProducer, topics: dict[str, str]) -> None:
        self._producer = producer
        self._topics = topics  # table -> topic
        self._records: list[Record] = []
        self._tables: dict[str, int] = defaultdict(int)

    def add(self, row: Row, *, topic: str, partition: int, offset: int) -> None:
        self._records.append(Record(self._topics[row.table], row.line, row.key))
        self._tables[row.table] += 1

    def reset(self) -> None:
        self._records = []
        self._tables.clear()

    async def flush(self) -> list[Rejected]:
        if not self._records:
            return []
        started = time.perf_counter()
        await self._producer.send_batch(self._records)
        metrics.SINK_FLUSH_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        for table, count in self._tables.items():
            metrics.SINK_ROWS.labels(self.name, table).inc(count)
        self._records = []
        self._tables.clear()
        return []
