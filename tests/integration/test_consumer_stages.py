"""The two-stage consumer loop against real Kafka: batch N is written while N+1 is prepared,
writes and commits stay in order, and a stop leaves every batch written and committed."""

from __future__ import annotations

import trio

from plugin_server.storage.kafka import Record, committed_offsets, ensure_topics, open_producer
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


async def test_writes_overlap_the_next_prepare_and_commit_in_order(aio, settings):  # noqa: ARG001
    topic, group = settings.kafka_consumption_topic, settings.kafka_consumer_group
    await ensure_topics(hosts=settings.kafka_hosts, topics=[topic], partitions=1)
    async with open_producer(hosts=settings.kafka_hosts, client_id="t") as producer:
        await producer.send_batch(Record(topic, f"m{i}".encode()) for i in range(60))
    handler = StagedHandler()
    consumer = BatchConsumer(
        name="staged", hosts=settings.kafka_hosts, topics=[topic], group_id=group, batch_size=10,
        batch_wait_ms=20, handle=handler,
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
