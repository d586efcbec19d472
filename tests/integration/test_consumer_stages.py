"""The two-stage consumer loop against real Kafka: batch N is written while N+1 is prepared,
writes and commits stay in order, and a stop leaves every batch written and committed."""

from __future__ import annotations

import trio

from plugin_server.storage.kafka.admin import ensure_topics
from plugin_server.storage.kafka.client import Record
from plugin_server.storage.kafka.producer import open_producer
from plugin_server.storage.kafka.reader import committed_offsets
from workers.consumer import BatchConsumer

# How long the first write waits for the next batch's prepare. With the messages already in the
# topic the prepare comes within a poll; a loop that waited for the write first would never
# prepare it, and the write gives up after this (the test then fails on `overlapped`).
OVERLAP_PATIENCE_SECONDS = 15


class StagedHandler:
    """The first batch's write waits for the next batch's prepare: overlap is proven, not hoped
    for (no sleeps). Records (what, first offset of the batch) in order."""

    def __init__(self) -> None:
        self.timeline: list[tuple[str, int]] = []
        self.next_prepared = trio.Event()
        self.overlapped: bool | None = None  # set by the first write

    async def prepare(self, batch):
        self.timeline.append(("prepare", batch[0].offset))
        if self.timeline[0] != ("prepare", batch[0].offset):  # any batch after the first
            self.next_prepared.set()
        await trio.lowlevel.checkpoint()
        return [m.offset for m in batch]

    async def write(self, batch, prepared):
        self.timeline.append(("write", prepared[0]))
        if self.overlapped is None:
            with trio.move_on_after(OVERLAP_PATIENCE_SECONDS):
                await self.next_prepared.wait()
            self.overlapped = self.next_prepared.is_set()
        await trio.lowlevel.checkpoint()
        self.timeline.append(("written", prepared[0]))

    async def __call__(self, batch):  # the one-step interface, unused when staged
        raise AssertionError("a staged handler is called in stages")


async def test_writes_overlap_the_next_prepare_and_commit_in_order(aio, settings):
    topic, group = settings.kafka_consumption_topic, settings.kafka_consumer_group
    await ensure_topics(hosts=settings.kafka_hosts, topics=[topic], partitions=1)
    async with open_producer(hosts=settings.kafka_hosts, client_id="t") as producer:
        await producer.send_batch(Record(topic, f"m{i}".encode()) for i in range(60))
    handler = StagedHandler()
    consumer = BatchConsumer(
        name="staged", hosts=settings.kafka_hosts, topics=[topic], group_id=group, batch_size=10,
        batch_wait_ms=20, staged=handler,
    )  # fmt: skip
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(consumer.run)
            while consumer.status.consumed < 60:
                await trio.sleep(0.05)
            consumer.request_stop()
    assert handler.overlapped is True  # the second batch was prepared while the first was being written
    first = handler.timeline[0][1]
    second = next(offset for what, offset in handler.timeline if what == "prepare" and offset != first)
    assert handler.timeline.index(("prepare", second)) < handler.timeline.index(("written", first))
    writes = [offset for what, offset in handler.timeline if what == "write"]
    assert writes == sorted(writes) and len(writes) >= 2 and writes[0] == first == 0
    written = [offset for what, offset in handler.timeline if what == "written"]
    assert written == writes  # one write at a time, in batch order
    committed = await committed_offsets(hosts=settings.kafka_hosts, group_id=group, partitions=[(topic, 0)])
    assert committed == {(topic, 0): 60}


async def test_lag_series_of_partitions_no_longer_assigned_are_removed(aio, settings):
    from plugin_server.core import metrics

    class FakeConsumer:
        def __init__(self, lags):
            self.lags = lags

        async def lag(self):
            return self.lags

    consumer = BatchConsumer(
        name="lag", hosts=settings.kafka_hosts, topics=["t"], group_id=settings.kafka_consumer_group, batch_size=1,
        batch_wait_ms=1, staged=StagedHandler(),
    )  # fmt: skip
    group = settings.kafka_consumer_group

    def series() -> set[str]:
        return {
            s.labels["partition"]
            for m in metrics.CONSUMER_LAG.collect()
            for s in m.samples
            if s.labels["group"] == group
        }

    assert await consumer._measure_lag(FakeConsumer({("t", 0): 5, ("t", 1): 7})) == 12
    assert series() == {"0", "1"}
    assert await consumer._measure_lag(FakeConsumer({("t", 1): 2})) == 2  # partition 0 went to another member
    assert series() == {"1"}
