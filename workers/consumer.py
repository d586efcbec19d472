"""The batch consumer loop shared by the ingestion worker and the ClickHouse writer.

Resources: opens its own Kafka consumer-group member and closes it on every exit path.
Delivery: at-least-once. A batch's offsets are committed only after `handle(batch)` returned,
which means everything it produced is durable. A commit lost to a rebalance is counted and
logged: the new owner re-reads those messages, and deduplication makes that harmless.
Errors: a retryable error from `handle` (a service is down) pauses and retries the same batch
with backoff, committing nothing, for as long as it takes; any other error propagates to the
supervisor. Stop: `request_stop()` lets the batch in flight finish and commit, then `run`
returns; with `drain_on_stop` it first keeps consuming until its partitions have no lag.

Two stages: a `StagedHandler` (`prepare(batch) -> prepared`, then `write(batch, prepared)`: the
ingestion worker's pipeline, then its sink), given as `staged=`, has batch N written while N+1 is prepared,
so the ClickHouse insert (in a thread) overlaps the next batch's Python work on another core.
At most one write is in flight; writes, and so commits, happen in batch order; a batch is
committed only once its own write returned. A plain `handle=` callable runs a batch in one step.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import trio

from plugin_server.core import logs, metrics
from plugin_server.core.errors import leaves
from plugin_server.core.health import ConsumerStatus
from plugin_server.core.retry import BATCH_RETRY, Backoff
from plugin_server.storage.kafka.client import CommitFailed, Message
from plugin_server.storage.kafka.consumer import KafkaConsumer, open_consumer

log = logs.get(__name__)
# How often an idle consumer refreshes its lag gauge (a metadata round trip).
LAG_REFRESH_SECONDS = 5.0

T = TypeVar("T")


def next_offsets(batch: Sequence[Message]) -> dict[tuple[str, int], int]:
    """The offsets to commit after `batch`: per partition, one past the highest offset seen."""
    offsets: dict[tuple[str, int], int] = {}
    for m in batch:
        key = (m.topic, m.partition)
        if m.offset + 1 > offsets.get(key, -1):
            offsets[key] = m.offset + 1
    return offsets


@dataclass
class _Write:
    """The batch whose write is in flight."""

    batch: list[Message]
    started: float
    done: trio.Event = field(default_factory=trio.Event)


class StagedHandler(Protocol):
    """A handler in two stages: `prepare` may run while the previous batch's `write` is in flight."""

    async def prepare(self, batch: list[Message]) -> Any: ...

    async def write(self, batch: list[Message], prepared: Any) -> None: ...


class BatchConsumer:
    def __init__(
        self,
        *,
        name: str,
        hosts: str,
        topics: Sequence[str],
        group_id: str,
        batch_size: int,
        batch_wait_ms: int,
        handle: Callable[[list[Message]], Awaitable[None]] | None = None,
        staged: StagedHandler | None = None,
        retry: Backoff = BATCH_RETRY,
        drain_on_stop: bool = False,
    ) -> None:
        self.status = ConsumerStatus(name)
        self._hosts = hosts
        self._topics = list(topics)
        self._group_id = group_id
        self._batch_size = batch_size
        self._batch_wait_ms = batch_wait_ms
        if (handle is None) == (staged is None):
            raise ValueError("a consumer takes exactly one of handle= (one step) and staged= (two stages)")
        self._handle = handle
        self._staged = staged
        self._retry = retry
        self._stop_requested = False
        self._drain = drain_on_stop
        self._lag_checked = 0.0
        self._lag_series: set[tuple[str, int]] = set()  # partitions whose lag this member reports
        self._writing: _Write | None = None
        self._nursery: trio.Nursery | None = None
        self.stopped = trio.Event()  # set once `run` returned, however it ended

    @property
    def statuses(self) -> list[ConsumerStatus]:
        return [self.status]

    def request_stop(self) -> None:
        """Finish the batch in flight, commit, and return from `run` (after draining, if asked)."""
        self._stop_requested = True

    async def run(self, *, task_status: trio.TaskStatus[BatchConsumer] = trio.TASK_STATUS_IGNORED) -> None:
        client_id = f"plugin-server-{self.status.name}"
        async with open_consumer(
            hosts=self._hosts, topics=self._topics, group_id=self._group_id, client_id=client_id
        ) as consumer:
            self.status.running = True
            # Started means a member of the group: it holds its partitions (or knows it has none).
            self.status.assigned = bool(await consumer.joined())
            task_status.started(self)
            log.info("consumer started", consumer=self.status.name, topics=self._topics, group=self._group_id)
            try:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    await self._loop(consumer)
            finally:
                self.status.running = False
                self.stopped.set()
                log.info("consumer stopped", consumer=self.status.name, consumed=self.status.consumed)

    async def _loop(self, consumer: KafkaConsumer) -> None:
        while not (self._stop_requested and not self._drain):
            batch = await self._retrying(
                "fetch", lambda: consumer.getmany(timeout_ms=self._batch_wait_ms, max_records=self._batch_size)
            )
            now = time.monotonic()
            self.status.last_poll = now
            self.status.assigned = bool(consumer.assignment())
            if not batch:
                await self._finish_write(consumer)  # idle: make the last batch durable and committed now
                self.status.last_progress = now
                if self._stop_requested and not self._drain:
                    return
                if self._stop_requested or now - self._lag_checked > LAG_REFRESH_SECONDS:
                    lag = await self._measure_lag(consumer)
                    if self._stop_requested and (lag == 0 or not self.status.assigned):
                        log.info("consumer drained: no lag left", consumer=self.status.name)
                        return
                continue
            started = time.perf_counter()
            metrics.BATCH_SIZE.observe(len(batch))
            if self._staged is None:
                assert self._handle is not None, "the constructor takes exactly one of handle and staged"
                await self._retrying("batch", functools.partial(self._handle, batch))
                await self._committed(consumer, batch, started)
                continue
            prepared = await self._retrying("batch", functools.partial(self._staged.prepare, batch))
            await self._finish_write(consumer)  # batch N must be written before N+1's write starts
            self._writing = _Write(batch, started)
            assert self._nursery is not None, "run opened it before the loop"
            self._nursery.start_soon(self._write, consumer, self._writing, prepared)
        await self._finish_write(consumer)

    async def _write(self, consumer: KafkaConsumer, write: _Write, prepared: Any) -> None:
        staged = self._staged
        assert staged is not None, "only a staged handler's batches are written apart"
        await self._retrying("write", lambda: staged.write(write.batch, prepared))
        await self._committed(consumer, write.batch, write.started)
        write.done.set()

    async def _finish_write(self, consumer: KafkaConsumer) -> None:
        """Wait for the write in flight (if any) to be durable and committed."""
        if self._writing is not None:
            await self._writing.done.wait()
            self._writing = None

    async def _committed(self, consumer: KafkaConsumer, batch: list[Message], started: float) -> None:
        try:
            await consumer.commit(next_offsets(batch))
        except CommitFailed as exc:
            metrics.COMMITS_FAILED.labels(self._group_id).inc()
            log.warning(
                "commit lost to a rebalance; messages will be re-read", consumer=self.status.name, error=str(exc)
            )
        self.status.consumed += len(batch)
        self.status.last_progress = time.monotonic()
        metrics.BATCH_SECONDS.labels(self.status.name).observe(time.perf_counter() - started)
        if self.status.last_progress - self._lag_checked > LAG_REFRESH_SECONDS:
            await self._measure_lag(consumer)  # a consumer that is always behind never polls empty

    async def _measure_lag(self, consumer: KafkaConsumer) -> int | None:
        self._lag_checked = time.monotonic()
        try:
            per_partition = await consumer.lag()
        except Exception as exc:  # noqa: BLE001 - lag is informational; the next fetch surfaces real faults
            log.warning("could not measure lag", consumer=self.status.name, error=str(exc))
            return None
        for (topic, partition), value in per_partition.items():
            metrics.CONSUMER_LAG.labels(self._group_id, topic, str(partition)).set(value)
        for topic, partition in self._lag_series - per_partition.keys():  # lost in a rebalance: not ours to report
            metrics.CONSUMER_LAG.remove(self._group_id, topic, str(partition))
        self._lag_series = set(per_partition)
        self.status.lag = sum(per_partition.values()) if per_partition or self.status.assigned else None
        return self.status.lag

    async def _retrying(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        attempts = 0
        while True:
            try:
                result = await fn()
            except Exception as exc:
                attempts += 1
                delay = self._retry.decide(exc, attempts)
                if delay is None:
                    raise
                cause = leaves(exc)[0]  # concurrent tasks fail as a group; the first says enough
                service = getattr(cause, "service", "pipeline")
                metrics.BATCH_RETRIES.labels(self.status.name, service).inc()
                self.status.retrying = str(cause)
                log.warning(
                    "transient failure, retrying", consumer=self.status.name, step=what, attempt=attempts,
                    delay_s=round(delay, 3), error=str(cause),
                )  # fmt: skip
                await trio.sleep(delay)
                continue
            self.status.retrying = None
            return result
