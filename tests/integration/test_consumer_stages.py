"""The two-stage consumer loop against real Kafka: batch N is written while N+1 is prepared,
writes and commits stay in order, and a stop leaves every batch written and committed."""

from __future__ import annotations

import trio

from plugin_server.storage.kafka.admin import ensure_topics
from plugin_server.storage.kafka.client import Record
from plugin_server.storage.kafka.producer import open_producer
from plugin_server.storage.kafka.reader import committed_offsets
from workers.consumer import BatchConsumer


class StagedHandler:
    def __init__(self) -> None:
        self.timeline: list[tuple[str, int]] = []  # (what, first offset of the batch)
        self.writing = False
        self.overlapped = 0

    async def prepare(self, batch):
        if self.writing:
            self.overlapped += 1
        self.timeline.append(("prepare", batch[0].offset))
        await trio.sleep(0.01)
        return [m.offset for m in batch]

    async def write(self, batch, prepared):
        self.writing = True
        self.timeline.append(("write", prepared[0]))
        await trio.sleep(0.2)  # a slow sink
        self.writing = False

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
    writes = [offset for what, offset in handler.timeline if what == "write"]
    assert writes == sorted(writes) and len(writes) >= 2
    assert handler.overlapped >= 1  # some batch was prepared while the previous one was written
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
