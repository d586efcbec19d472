"""BatchConsumer's loop on trio's mock clock with a fake Kafka consumer: a retryable failure
(fetch, one-step handle, staged prepare or write) is retried on BATCH_RETRY's schedule (0.1, 0.2,
0.4, ... s) without committing, a permanent one propagates at once, and a staged write overlaps
the next batch's prepare. Exact instants, no real time. Against real Kafka:
tests/integration/test_consumer_stages.py and tests/integration/test_server.py."""

from __future__ import annotations

import pytest
import trio
from prometheus_client import REGISTRY

from plugin_server.core.errors import ServiceUnavailable, StorageError
from plugin_server.storage.kafka.client import Message
from workers.consumer import BatchConsumer

DOWN = ServiceUnavailable("clickhouse", "connection refused")
BATCH_RETRY_INSTANTS = [0.0, 0.1, 0.3, 0.7, 1.5, 3.1]  # each try: the sum of the delays before it
# (compared with pytest.approx: 0.1 + 0.2 on the mock clock is 0.30000000000000004)
WAIT_MS = 100


def messages(first: int, count: int) -> list[Message]:
    return [Message("t", 0, offset, None, b"v", 0) for offset in range(first, first + count)]


class FakeKafka:
    """Hands out `batches` in order, then nothing (waiting the poll timeout, as Kafka does);
    the first fetches fail with `fetch_failures`. Records the instant of every fetch and commit."""

    def __init__(self, batches: list[list[Message]], *fetch_failures: Exception) -> None:
        self.batches = list(batches)
        self.fetch_failures = list(fetch_failures)
        self.fetches: list[float] = []
        self.commits: list[tuple[float, dict]] = []

    async def getmany(self, *, timeout_ms: int, max_records: int) -> list[Message]:
        self.fetches.append(trio.current_time())
        if self.fetch_failures:
            await trio.lowlevel.checkpoint()
            raise self.fetch_failures.pop(0)
        if self.batches:
            await trio.lowlevel.checkpoint()
            return self.batches.pop(0)
        await trio.sleep(timeout_ms / 1000)
        return []

    def assignment(self) -> set[tuple[str, int]]:
        return {("t", 0)}

    async def commit(self, offsets: dict) -> None:
        self.commits.append((trio.current_time(), offsets))

    async def lag(self) -> dict:
        return {("t", 0): 0}


class Flaky:
    """A step that fails with the next of `failures` until there are none left; records the
    instant of every try."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.tries: list[float] = []

    async def __call__(self, *args):
        self.tries.append(trio.current_time())
        await trio.lowlevel.checkpoint()
        if self.failures:
            raise self.failures.pop(0)
        return [m.offset for m in args[0]]


def consumer_with(name: str, **handler) -> BatchConsumer:
    return BatchConsumer(
        name=name, hosts="unused:9092", topics=["t"], group_id="g", batch_size=10, batch_wait_ms=WAIT_MS, **handler
    )


async def consume(consumer: BatchConsumer, kafka: FakeKafka, *, until: float) -> None:
    """Run the loop over `kafka` until the mock clock reads `until`, then stop it as the server does."""
    async with trio.open_nursery() as nursery:
        consumer._nursery = nursery  # what run() does after opening the real consumer

        async def stop_later() -> None:
            await trio.sleep(until)
            consumer.request_stop()

        nursery.start_soon(stop_later)
        await consumer._loop(kafka)


def retries(name: str) -> float:
    return REGISTRY.get_sample_value("ingestion_batch_retries_total", {"worker": name, "service": "clickhouse"}) or 0


@pytest.mark.parametrize("failures", [0, 1, 2, 5])
async def test_a_batch_is_retried_on_the_batch_schedule_and_committed_once(autojump_clock, failures):
    handle = Flaky(*[DOWN] * failures)
    consumer, kafka = consumer_with(f"retry-{failures}", handle=handle), FakeKafka([messages(0, 3)])
    await consume(consumer, kafka, until=10)
    assert handle.tries == pytest.approx(BATCH_RETRY_INSTANTS[: failures + 1])
    assert [offsets for _, offsets in kafka.commits] == [{("t", 0): 3}]
    assert kafka.commits[0][0] == pytest.approx(BATCH_RETRY_INSTANTS[failures])  # only after it succeeded
    assert retries(f"retry-{failures}") == failures
    assert consumer.status.retrying is None and consumer.status.consumed == 3


async def test_while_retrying_nothing_is_committed_and_the_status_says_why(autojump_clock):
    handle = Flaky(*[DOWN] * 5)
    consumer, kafka = consumer_with("retry-status", handle=handle), FakeKafka([messages(0, 3)])
    async with trio.open_nursery() as nursery:
        consumer._nursery = nursery
        nursery.start_soon(consumer._loop, kafka)
        await trio.sleep(1.0)  # tries at 0, 0.1, 0.3, 0.7 failed; the next is at 1.5
        assert handle.tries == pytest.approx([0.0, 0.1, 0.3, 0.7])
        assert kafka.commits == [] and consumer.status.retrying == str(DOWN)
        await trio.sleep(2.5)
        assert [offsets for _, offsets in kafka.commits] == [{("t", 0): 3}] and consumer.status.retrying is None
        assert kafka.commits[0][0] == pytest.approx(3.1)
        nursery.cancel_scope.cancel()


async def test_a_permanent_error_propagates_at_once(autojump_clock):
    handle = Flaky(StorageError("clickhouse", "syntax error"))
    consumer, kafka = consumer_with("permanent", handle=handle), FakeKafka([messages(0, 3)])
    with pytest.raises(StorageError, match="syntax error"):
        await consumer._loop(kafka)
    assert handle.tries == [0.0] and trio.current_time() == 0.0 and kafka.commits == []


async def test_a_failed_fetch_is_retried_on_the_same_schedule(autojump_clock):
    handle = Flaky()
    consumer, kafka = consumer_with("fetch", handle=handle), FakeKafka([messages(0, 2)], DOWN, DOWN, DOWN)
    await consume(consumer, kafka, until=5)
    assert kafka.fetches[:4] == pytest.approx([0.0, 0.1, 0.3, 0.7])
    assert handle.tries == pytest.approx([0.7]) and [offsets for _, offsets in kafka.commits] == [{("t", 0): 2}]


class Staged:
    """A two-stage handler: the first batch's write waits (up to `patience` s of mock time) for
    the next batch's prepare, so overlap is proven, not hoped for; writes fail with `write_failures`."""

    def __init__(self, *write_failures: Exception, patience: float = 60.0) -> None:
        self.timeline: list[tuple[float, str, int]] = []
        self.next_prepared = trio.Event()
        self.write_failures = list(write_failures)
        self.patience = patience
        self.overlapped: bool | None = None

    async def prepare(self, batch):
        self.timeline.append((trio.current_time(), "prepare", batch[0].offset))
        if batch[0].offset > 0:
            self.next_prepared.set()
        await trio.lowlevel.checkpoint()
        return [m.offset for m in batch]

    async def write(self, batch, prepared):
        self.timeline.append((trio.current_time(), "write", prepared[0]))
        if self.write_failures:
            await trio.lowlevel.checkpoint()
            raise self.write_failures.pop(0)
        if prepared[0] == 0 and self.overlapped is None:
            with trio.move_on_after(self.patience):
                await self.next_prepared.wait()
            self.overlapped = self.next_prepared.is_set()
        self.timeline.append((trio.current_time(), "written", prepared[0]))


async def test_a_write_overlaps_the_next_prepare_and_commits_stay_in_order(autojump_clock):
    staged = Staged()
    consumer, kafka = consumer_with("staged", staged=staged), FakeKafka([messages(0, 10), messages(10, 10)])
    await consume(consumer, kafka, until=5)
    assert staged.overlapped is True
    events = [(what, offset) for _, what, offset in staged.timeline]
    assert sorted(events) == sorted(
        [("prepare", 0), ("write", 0), ("prepare", 10), ("written", 0), ("write", 10), ("written", 10)]
    )
    # batch 10 was prepared before batch 0's write (begun once 0 was prepared) returned: the write
    # waits for it, so a loop that waited for the write first would have timed out instead
    assert events.index(("prepare", 0)) < events.index(("write", 0)) < events.index(("written", 0))
    assert events.index(("prepare", 10)) < events.index(("written", 0))
    # writes, and so commits, stay in batch order
    assert events.index(("written", 0)) < events.index(("write", 10)) < events.index(("written", 10))
    assert [offsets for _, offsets in kafka.commits] == [{("t", 0): 10}, {("t", 0): 20}]
    assert all(when == 0.0 for when, _, _ in staged.timeline)  # nobody waited: the overlap did it


async def test_a_failed_write_is_retried_and_holds_back_the_next_write_and_its_commit(autojump_clock):
    staged = Staged(DOWN, DOWN)
    consumer, kafka = consumer_with("staged-retry", staged=staged), FakeKafka([messages(0, 10), messages(10, 10)])
    await consume(consumer, kafka, until=5)
    writes = [(when, offset) for when, what, offset in staged.timeline if what == "write"]
    assert [offset for _, offset in writes] == [0, 0, 0, 10]  # batch 10's write waited for batch 0's
    assert [when for when, _ in writes] == pytest.approx([0.0, 0.1, 0.3, 0.3])
    assert [offsets for _, offsets in kafka.commits] == [{("t", 0): 10}, {("t", 0): 20}]
    assert [when for when, _ in kafka.commits] == pytest.approx([0.3, 0.3])
