"""Pure parts of the person caches: the Redis encoding (never trusted) and the in-process LRU."""

from __future__ import annotations

import datetime as dt

import pytest

from plugin_server.ingestion.person_cache import StateCache, decode_state, encode_state
from plugin_server.ingestion.person_properties import initial

T0 = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)


def test_encoding_round_trips_the_whole_state():
    state = initial(
        set={"a": 1, "nested": {"b": [1, 2]}}, set_once={"first": "x"}, unset=["gone"], timestamp=T0, tiebreak="u1"
    )
    version, decoded = decode_state(encode_state(7, state))
    assert version == 7
    assert decoded.to_columns() == state.to_columns()


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"{}", b"[1, 2]", b'["1", {}, {}]', b"[1, [], {}]", b"[1, {}, []]", b"null", b"\xff\xfe"],
)
def test_anything_else_in_redis_is_a_miss(raw):
    assert decode_state(raw) is None


def test_state_cache_holds_by_version_and_bounds_itself():
    cache = StateCache(capacity=2)
    s1 = initial(set={"n": 1}, timestamp=T0, tiebreak="a")
    cache.put(1, 3, s1, [(1, "a"), (1, "b")])
    assert cache.get(1, 3) is s1 and cache.get(1, 4) is None
    held, unknown = cache.held_for([(1, "a"), (1, "c")])
    assert held == {1: (3, s1)} and unknown == [(1, "c")]
    cache.put(2, 0, s1, [(1, "c")])
    cache.put(3, 0, s1, [(1, "d")])  # person 1 is the oldest: evicted
    assert cache.get(1, 3) is None
    held, unknown = cache.held_for([(1, "a"), (1, "d")])
    assert held == {3: (0, s1)} and unknown == [(1, "a")]
