import dataclasses
import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin_server.ingestion.person_properties import (
    EMPTY,
    MAX_SET_ONCE,
    PropertyState,
    apply_event,
    initial,
    merge,
)

UTC = dt.UTC
T0 = dt.datetime(2023, 5, 1, 12, 0, tzinfo=UTC)


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


@dataclasses.dataclass(frozen=True)
class Ev:
    ts: dt.datetime
    uuid: str
    set: dict[str, Any] = dataclasses.field(default_factory=dict)
    set_once: dict[str, Any] = dataclasses.field(default_factory=dict)
    unset: list[str] = dataclasses.field(default_factory=list)


def ev(minutes: int, uuid: str = "u", **ops: Any) -> Ev:
    return Ev(ts=at(minutes), uuid=uuid, **ops)


def apply(state: PropertyState, e: Ev) -> tuple[PropertyState, bool]:
    return apply_event(state, set=e.set, set_once=e.set_once, unset=e.unset, timestamp=e.ts, tiebreak=e.uuid)


def fold(events: list[Ev], start: PropertyState = EMPTY) -> PropertyState:
    state = start
    for e in events:
        state, _ = apply(state, e)
    return state


def reference(events: list[Ev], start: dict[str, Any] | None = None) -> dict[str, Any]:
    """PostHog's per-event rules (REFERENCE.md 3.3), applied in (timestamp, uuid) order."""
    props = dict(start or {})
    for e in sorted(events, key=lambda e: (e.ts, e.uuid)):
        for k, v in e.set_once.items():
            if k not in props:
                props[k] = v
        props.update(e.set)
        for k in e.unset:
            props.pop(k, None)
    return props


def strict(props: dict[str, Any]) -> str:
    return json.dumps(props, sort_keys=True)


def posthog_person(props: dict[str, Any]) -> PropertyState:
    return PropertyState.from_columns(props, {}, {})


# --- PostHog's table (REFERENCE.md 3.3), person starts {a: 1} "set at an unknown time" ---


@pytest.mark.parametrize(
    ("set_", "set_once", "unset", "expected", "changed"),
    [
        ({"b": 2}, None, None, {"a": 1, "b": 2}, True),
        ({"a": 1}, None, None, {"a": 1}, False),
        (None, {"a": 5, "c": 3}, None, {"a": 1, "c": 3}, True),
        ({"a": 2}, {"a": 3}, None, {"a": 2}, True),
        (None, None, ["a"], {}, True),
        (None, None, {"a": None}, {}, True),
        (None, None, ["zzz"], {"a": 1}, False),
    ],
    ids=["set-new", "set-same", "set-once", "set-beats-set-once", "unset-list", "unset-object", "unset-missing"],
)
@pytest.mark.parametrize("operation", [None, "set", "set_once"], ids=["no-op-column", "op-set", "op-set-once"])
def test_posthog_table(set_, set_once, unset, expected, changed, operation):
    start = PropertyState.from_columns(
        {"a": 1}, {"a": "2020-01-01T00:00:00.000Z"}, {"a": operation} if operation else {}
    )
    state, did_change = apply_event(start, set=set_, set_once=set_once, unset=unset, timestamp=T0, tiebreak="e1")
    assert state.properties == expected
    assert did_change is changed


def test_nothing_to_apply_returns_the_same_state():
    start = posthog_person({"a": 1})
    state, changed = apply_event(start, timestamp=T0, tiebreak="e")
    assert state is start
    assert changed is False


# --- order independence, by example ---


def test_late_older_set_does_not_overwrite_a_newer_one():
    state = fold([ev(2, "new", set={"plan": "pro"}), ev(1, "old", set={"plan": "free"})])
    assert state.properties == {"plan": "pro"}


def test_late_older_set_once_wins_over_a_newer_one():
    state, _ = apply(EMPTY, ev(2, "new", set_once={"first_seen": "tuesday"}))
    state, changed = apply(state, ev(1, "old", set_once={"first_seen": "monday"}))
    assert state.properties == {"first_seen": "monday"}
    assert changed is True


@pytest.mark.parametrize(
    ("late", "expected"),
    [
        (ev(1, "l", set={"a": "old"}), {}),
        (ev(3, "l", set={"a": "newer"}), {"a": "newer"}),
        (ev(1, "l", set_once={"a": "before"}), {}),
        (ev(3, "l", set_once={"a": "after"}), {"a": "after"}),
    ],
    ids=["older-set-stays-unset", "newer-set-revives", "older-set-once-stays-unset", "newer-set-once-revives"],
)
def test_unset_is_a_tombstone(late, expected):
    state = fold([ev(0, "s", set={"a": "v"}), ev(2, "u", unset=["a"]), late])
    assert state.properties == expected
    assert "a" in state.to_columns()[2]  # the tombstone is stored even while the key is absent


def test_set_once_after_an_older_set_never_decides():
    state = fold([ev(3, "o", set_once={"a": "once"}), ev(1, "s", set={"a": "set"})])
    assert state.properties == {"a": "set"}


def test_late_unset_brings_back_the_set_once_after_it():
    state = fold([ev(1, "s", set={"a": "set"}), ev(3, "o", set_once={"a": "once"})])
    assert state.properties == {"a": "set"}
    state, changed = apply(state, ev(2, "u", unset=["a"]))
    assert state.properties == {"a": "once"}
    assert changed is True


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        ({"set": {"a": "s"}, "set_once": {"a": "o"}}, {"a": "s"}),
        ({"set": {"a": "s"}, "unset": ["a"]}, {}),
        ({"set_once": {"a": "o"}, "unset": ["a"]}, {}),
        ({"set": {"a": "s"}, "set_once": {"a": "o"}, "unset": ["a"]}, {}),
    ],
    ids=["set-beats-set-once", "unset-beats-set", "unset-beats-set-once", "all-three"],
)
def test_one_event_applies_set_once_then_set_then_unset(ops, expected):
    state, _ = apply_event(EMPTY, timestamp=T0, tiebreak="e", **ops)
    assert state.properties == expected
    # An older value set elsewhere does not change what the event decided.
    state, _ = apply_event(state, set={"a": "earlier"}, timestamp=at(-1), tiebreak="z")
    assert state.properties == expected


def test_the_uuid_breaks_timestamp_ties():
    state = fold([ev(1, "b", set={"a": "from b"}), ev(1, "a", set={"a": "from a"})])
    assert state.properties == {"a": "from b"}


@pytest.mark.parametrize("unset", ["a", None, 5, [1, None]], ids=["string", "none", "number", "non-strings"])
def test_other_unset_shapes_are_ignored(unset):
    state, changed = apply_event(posthog_person({"a": 1}), unset=unset, timestamp=T0, tiebreak="e")
    assert state.properties == {"a": 1}
    assert changed is False


def test_non_object_set_is_ignored():
    state, changed = apply_event(EMPTY, set=["a"], set_once="b", timestamp=T0, tiebreak="e")
    assert state.properties == {}
    assert changed is False


def test_changed_compares_json_values_strictly():
    state = initial(set={"a": 1}, timestamp=T0, tiebreak="e1")
    _, changed = apply_event(state, set={"a": True}, timestamp=at(1), tiebreak="e2")
    assert changed is True
    _, changed = apply_event(state, set={"a": 1}, timestamp=at(1), tiebreak="e2")
    assert changed is False


def test_a_null_value_is_present():
    state = initial(set={"a": None}, timestamp=T0, tiebreak="e")
    assert state.properties == {"a": None}


def test_naive_timestamps_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        apply_event(EMPTY, set={"a": 1}, timestamp=dt.datetime(2023, 1, 1), tiebreak="e")


def test_initial_matches_posthog_creation():
    state = initial(set={"a": 1, "b": 2}, set_once={"b": 0, "c": 3}, timestamp=T0, tiebreak="e")
    assert state.properties == {"c": 3, "a": 1, "b": 2}


def test_initial_keeps_unset_as_a_tombstone():
    state = initial(unset=["a"], timestamp=at(2), tiebreak="e")
    state, changed = apply(state, ev(1, "older", set={"a": 1}))
    assert state.properties == {}
    assert changed is False


# --- columns ---


def test_columns_round_trip_through_json():
    state = fold([
        ev(1, "e1", set={"plan": "pro"}, set_once={"first": "x"}),
        ev(2, "e2", unset=["gone"], set_once={"gone": "again", "first": "y"}),
        ev(0, "e0", set={"gone": 1}),
    ])  # fmt: skip
    columns = json.loads(json.dumps(state.to_columns()))
    assert PropertyState.from_columns(*columns) == state


def test_columns_shape():
    state = fold([ev(1, "e1", set={"plan": "pro"}), ev(2, "e2", set_once={"first": "x"}), ev(3, "e3", unset=["x"])])
    properties, updated_at, operations = state.to_columns()
    assert properties == {"plan": "pro", "first": "x"}
    assert updated_at == {"plan": "2023-05-01T12:01:00.000000Z", "first": "2023-05-01T12:02:00.000000Z"}
    assert operations == {
        "plan": {"op": "set", "ts": "2023-05-01T12:01:00.000000Z", "tb": "e1"},
        "first": {"op": "set_once", "once": [["2023-05-01T12:02:00.000000Z", "e2", "x"]]},
        "x": {"op": "unset", "ts": "2023-05-01T12:03:00.000000Z", "tb": "e3"},
    }


def test_set_at_unknown_time_round_trips():
    state = posthog_person({"a": 1})
    properties, updated_at, operations = state.to_columns()
    assert (properties, updated_at, operations) == ({"a": 1}, {}, {"a": {"op": "set", "ts": None, "tb": ""}})
    assert PropertyState.from_columns(properties, updated_at, operations) == state


@pytest.mark.parametrize(
    ("last_operation", "last_updated_at"),
    [
        ({"a": "set", "b": "set_once"}, {"a": "2023-01-01T00:00:00.000Z", "b": "2023-01-01T00:00:00.000Z"}),
        ({}, {}),
        (None, None),
        ({"a": "set", "stale": "set_once"}, {}),
    ],
    ids=["posthog-strings", "empty", "null-columns", "key-without-value"],
)
def test_posthog_shaped_columns_are_set_at_an_unknown_time(last_operation, last_updated_at):
    start = PropertyState.from_columns({"a": 1, "b": 2}, last_updated_at, last_operation)
    assert start.properties == {"a": 1, "b": 2}
    state = fold([ev(-(10**6), "ancient", set={"a": "timestamped"}, set_once={"b": "ignored"})], start)
    assert state.properties == {"a": "timestamped", "b": 2}


@pytest.mark.parametrize(
    "entry",
    [
        {"op": "set_once", "once": [["2023-05-01T12:00:00Z", "e", "other"]]},
        {"op": "unset", "ts": "2023-05-01T12:00:00Z", "tb": "e"},
        {"op": "bogus", "once": "nope"},
    ],
    ids=["value-edited", "unset-but-present", "malformed"],
)
def test_entries_disagreeing_with_properties_mean_unknown_time(entry):
    state = PropertyState.from_columns({"a": "edited"}, {}, {"a": entry})
    assert state == posthog_person({"a": "edited"})


def test_rich_set_without_a_value_is_dropped():
    state = PropertyState.from_columns({}, {}, {"a": {"op": "set", "ts": "2023-05-01T12:00:00Z", "tb": "e"}})
    assert state == EMPTY


def test_unparseable_timestamps_read_as_unknown():
    entry = {"op": "set", "ts": "not a time", "tb": "e"}
    state = PropertyState.from_columns({"a": 1}, {}, {"a": entry})
    assert state.properties == {"a": 1}
    assert fold([ev(-(10**6), "x", set={"a": 2})], state).properties == {"a": 2}


# --- merge ---


def test_merge_lets_the_later_operation_win_whichever_side_it_is_on():
    into = fold([ev(1, "e1", set={"email": "old@x"})])
    other = fold([ev(2, "e2", set={"email": "new@x"})])
    assert merge(into, other).properties == {"email": "new@x"}
    assert merge(other, into).properties == {"email": "new@x"}


def test_merge_of_posthog_shaped_persons_is_symmetric():
    old = posthog_person({"key_on_both": "old value both", "key_on_old": "old value"})
    new = posthog_person({"key_on_both": "new value both", "key_on_new": "new value"})
    merged = merge(new, old)
    assert merged == merge(old, new)
    assert merged.properties["key_on_old"] == "old value"
    assert merged.properties["key_on_new"] == "new value"
    assert merged.properties["key_on_both"] in ("old value both", "new value both")


# --- properties (hypothesis) ---

KEYS = ("a", "b", "c")
VALUES = st.sampled_from(["x", "y", 1])
TIMES = st.sampled_from([at(0), at(1), at(2)])
UPDATES = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=3)


@st.composite
def streams(draw: st.DrawFn, max_size: int = 8, unset: bool = True) -> list[Ev]:
    """With `unset`, every `$set_once` value is unique, so runs never compact (see MAX_SET_ONCE:
    compaction is exact without `$unset`, and the only approximation with it)."""
    uuids = draw(st.lists(st.uuids().map(str), max_size=max_size, unique=True))
    unique_values = iter(range(1000, 2000))
    once = (
        st.lists(st.sampled_from(KEYS), max_size=3, unique=True).map(
            lambda keys: {k: f"once-{next(unique_values)}" for k in keys}
        )
        if unset
        else UPDATES
    )
    return [
        Ev(
            ts=draw(TIMES),
            uuid=uuid,
            set=draw(UPDATES),
            set_once=draw(once),
            unset=draw(st.lists(st.sampled_from(KEYS), max_size=2)) if unset else [],
        )
        for uuid in uuids
    ]


STARTS = st.one_of(st.none(), st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=2))


def start_state(start: dict[str, Any] | None) -> PropertyState:
    return EMPTY if start is None else posthog_person(start)


@settings(max_examples=300, deadline=None)
@given(events=streams(), start=STARTS, data=st.data())
def test_every_arrival_order_gives_the_sequential_result(events, start, data):
    expected = reference(events, start)
    order = data.draw(st.permutations(events))
    for arrival in (order, events, events[::-1]):
        state = fold(arrival, start_state(start))
        assert strict(state.properties) == strict(expected)


@settings(max_examples=300, deadline=None)
@given(events=streams(max_size=12, unset=False), start=STARTS, data=st.data())
def test_without_unset_every_arrival_order_gives_the_sequential_result_even_with_compaction(events, start, data):
    expected = reference(events, start)
    for arrival in (data.draw(st.permutations(events)), events, events[::-1]):
        assert strict(fold(arrival, start_state(start)).properties) == strict(expected)
    sides = data.draw(st.lists(st.booleans(), min_size=len(events), max_size=len(events)))
    left = fold([e for e, side in zip(events, sides, strict=True) if side])
    right = fold([e for e, side in zip(events, sides, strict=True) if not side])
    assert strict(merge(left, right).properties) == strict(reference(events))


def test_set_once_only_keys_stay_small():
    state = EMPTY
    for i in range(500):
        state, _ = apply_event(state, set_once={"$initial_browser": "Chrome" if i % 100 else "Firefox"},
                               timestamp=at(i), tiebreak=f"u{i:04}")  # fmt: skip
    assert state.properties == {"$initial_browser": "Firefox"}
    assert len(state.by_key["$initial_browser"].once) <= MAX_SET_ONCE


@settings(max_examples=300, deadline=None)
@given(events=streams(), start=STARTS)
def test_changed_is_true_exactly_when_properties_change(events, start):
    state = start_state(start)
    for e in events:
        new, changed = apply(state, e)
        assert changed is (strict(new.properties) != strict(state.properties))
        state = new


@settings(max_examples=300, deadline=None)
@given(events=streams(), start=STARTS, compaction=st.booleans())
def test_properties_carried_from_the_previous_state_equal_properties_recomputed(events, start, compaction):
    """apply_event derives `properties` from the previous state's for the keys that changed."""
    state = start_state(start)
    for e in events:
        if compaction:  # the same value again and again: runs compact
            e = Ev(ts=e.ts, uuid=e.uuid, set=e.set, set_once=dict.fromkeys(e.set_once, "same"), unset=e.unset)
        state, _ = apply(state, e)
        assert strict(state.properties) == strict(PropertyState(state.by_key).properties)


@settings(max_examples=300, deadline=None)
@given(events=streams(), data=st.data())
def test_merge_of_two_folded_parts_equals_the_fold_of_the_whole(events, data):
    sides = data.draw(st.lists(st.booleans(), min_size=len(events), max_size=len(events)))
    left = fold([e for e, side in zip(events, sides, strict=True) if side])
    right = fold([e for e, side in zip(events, sides, strict=True) if not side])
    assert merge(left, right) == fold(events)
    assert merge(left, right).properties == reference(events)


@settings(max_examples=300, deadline=None)
@given(
    a=streams(max_size=4), b=streams(max_size=4), c=streams(max_size=4), starts=st.lists(STARTS, min_size=3, max_size=3)
)
def test_merge_is_commutative_associative_and_idempotent(a, b, c, starts):
    x, y, z = (fold(events, start_state(s)) for events, s in zip((a, b, c), starts, strict=True))
    assert merge(x, y) == merge(y, x)
    assert merge(merge(x, y), z) == merge(x, merge(y, z))
    assert merge(x, x) == x
    assert merge(merge(x, y), y) == merge(x, y)


@settings(max_examples=300, deadline=None)
@given(events=streams(), start=STARTS)
def test_columns_round_trip(events, start):
    state = fold(events, start_state(start))
    columns = json.loads(json.dumps(state.to_columns()))
    assert PropertyState.from_columns(*columns) == state
    assert columns[0] == state.properties
