"""Kafka's murmur2 and the default partitioner: the same answers as aiokafka's (and so Java's)."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as reference
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin_server.storage.kafka.partitioner import murmur2, partition_of


@settings(max_examples=2000)
@given(st.binary(max_size=600))  # past the precomputed word counts (255 bytes) too
def test_murmur2_matches_aiokafka_for_any_bytes(data):
    assert murmur2(data) == reference(data)


# Kafka's own test vectors (UtilsTest.testMurmur2), Java's signed 32-bit results.
KAFKA_VECTORS = [
    (b"21", -973932308), (b"foobar", -790332482), (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829), (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]  # fmt: skip


def test_murmur2_gives_kafkas_test_vectors():
    for key, signed in KAFKA_VECTORS:
        assert murmur2(key) == signed & 0xFFFFFFFF, key


@given(st.binary(min_size=1, max_size=64), st.integers(min_value=1, max_value=64))
def test_partition_of_is_where_the_default_partitioner_puts_the_key(key, count):
    partitions = list(range(count))
    assert partition_of(key, partitions) == DefaultPartitioner()(key, partitions, partitions)


def test_partition_of_indexes_the_sorted_partition_list():
    assert partition_of(b"k", [3]) == 3  # one partition: always it, whatever its number
