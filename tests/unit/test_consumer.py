import pytest

from plugin_server.storage.kafka.client import Message
from workers.consumer import next_offsets


def m(topic: str, partition: int, offset: int) -> Message:
    return Message(topic, partition, offset, None, b"v", 0)


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        ([], {}),
        ([m("t", 0, 0)], {("t", 0): 1}),
        ([m("t", 0, 5), m("t", 0, 6), m("t", 0, 7)], {("t", 0): 8}),
        ([m("t", 0, 7), m("t", 0, 5), m("t", 0, 6)], {("t", 0): 8}),
        ([m("t", 0, 3), m("t", 1, 10), m("t", 0, 4), m("t", 1, 9)], {("t", 0): 5, ("t", 1): 11}),
        ([m("a", 0, 1), m("b", 0, 100)], {("a", 0): 2, ("b", 0): 101}),
        ([m("t", 0, 4), m("t", 0, 4)], {("t", 0): 5}),
        ([m("t", 2, 0), m("t", 2, 1_000_000_000_000)], {("t", 2): 1_000_000_000_001}),
    ],
    ids=["empty", "one", "in-order", "out-of-order", "two-partitions", "two-topics", "redelivered", "large-offset"],
)
def test_next_offsets(batch, expected):
    assert next_offsets(batch) == expected


def test_next_offsets_with_gaps_commits_past_the_highest():
    # compacted or transactional topics have gaps: commit one past the highest offset seen
    assert next_offsets([m("t", 0, 10), m("t", 0, 20)]) == {("t", 0): 21}
