"""Person properties whose final value does not depend on the order events arrive in.

PostHog applies `$set`, `$set_once` and `$unset` in arrival order (REFERENCE.md 3.3), so a late,
older event overwrites a newer value. Here the result is defined as if every event had been
applied, with PostHog's per-event rules, in the order of its key `(timestamp, event uuid)`. Per
property that means: the latest `$set`/`$unset` decides; after a `$set` its value, after an
`$unset` the earliest `$set_once` that came after it (else absent), and with neither the earliest
`$set_once`. Within one event `$set_once`, `$set`, `$unset` apply in that order, so the kind of
operation is the last part of the order.

Each key keeps the latest `$set`/`$unset` and the `$set_once`s ordered after it; everything older
can never decide again and is dropped. The state is a join-semilattice (a state-based CRDT):
applying operations and merging states commute, so any arrival order, any split into batches,
and any merge of persons give the same properties.

Bounded state, and what that costs in exactness: a `$set_once` after the latest `$set`/`$unset`
of its key may matter later, because an `$unset` arriving late with a timestamp before it would
bring it back; keeping every one would grow keys that only ever receive `$set_once` (such as
`$initial_*`) by one entry per event. So runs of `$set_once` with one value keep only their first
and last operation, and at most `MAX_SET_ONCE` operations are kept (the earliest). Without
`$unset` this loses nothing (the earliest `$set_once` and every `$set` are always kept), so
`$set`/`$set_once` are exactly order-independent. With `$unset`, the result is exact unless a late
`$unset` lands inside a run that a different value later split, or after the kept window.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, overload

import orjson

# `$set_once` operations kept per key after compaction: enough for a key whose value changed
# several times between late `$unset`s; a bound, so a key cannot grow with its event count.
MAX_SET_ONCE = 16
# Ranks order the operations of one event as PostHog applies them.
SET_ONCE, SET, UNSET = 0, 1, 2
_OP_NAMES = {SET: "set", UNSET: "unset"}
_MIN_TIME = dt.datetime.min.replace(tzinfo=dt.UTC)
_PLAIN_SCALARS = frozenset({str, int, bool, type(None)})


class Op:
    """One operation on one key. `ts` None means "at an unknown time", before every timestamp.

    A plain slotted class: the hot path builds one per property per event, and dataclass or
    cached_property machinery cost more than the work itself. Treat instances as immutable."""

    __slots__ = ("_canonical", "_order", "rank", "tiebreak", "ts", "value")

    def __init__(self, ts: dt.datetime | None, tiebreak: str, rank: int, value: Any = None) -> None:
        self.ts = ts
        self.tiebreak = tiebreak
        self.rank = rank
        self.value = value
        self._order = (ts is not None, ts or _MIN_TIME, tiebreak, rank)
        self._canonical: str | None = None

    @property
    def canonical(self) -> str:
        """The value as canonical JSON: `1`, `1.0` and `true` are different values, as in jsonb."""
        if self._canonical is None:
            self._canonical = _canonical(self.value)
        return self._canonical

    def same_value(self, other: Op) -> bool:
        """`canonical == other.canonical`, without building JSON for the usual scalar values:
        same type (so 1, 1.0 and true stay different) and equal. Floats and containers go through
        canonical JSON (-0.0, and 1 vs 1.0 nested inside a list)."""
        a: object = self.value
        b: object = other.value
        kind = type(a)
        if kind is type(b) and kind in _PLAIN_SCALARS:
            return a == b
        return self.canonical == other.canonical

    def __lt__(self, other: Op) -> bool:
        # The value only breaks ties that real events never make (a reused uuid, or two values
        # "set at an unknown time"); without it merge would not be commutative.
        if self._order != other._order:
            return self._order < other._order
        return self.canonical < other.canonical

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Op):
            return NotImplemented
        return self._order == other._order and self.canonical == other.canonical

    def __hash__(self) -> int:
        return hash(self._order)

    def __repr__(self) -> str:
        return f"Op({self.ts!r}, {self.tiebreak!r}, {self.rank}, {self.value!r})"


class KeyState:
    """`last`: the latest `$set`/`$unset`; `once`: the `$set_once`s after it, earliest first.

    A plain slotted class for the same reason as Op: a pageview adds about a dozen operations,
    and a frozen dataclass's __init__ cost more than `add` itself. Treat instances as immutable."""

    __slots__ = ("_json", "last", "once")

    def __init__(self, last: Op | None = None, once: tuple[Op, ...] = ()) -> None:
        self.last = last
        self.once = once
        self._json: dict[str, Any] | None = None  # to_json's result: most keys are unchanged between writes

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyState):
            return NotImplemented
        return self.last == other.last and self.once == other.once

    def __hash__(self) -> int:
        return hash((self.last, self.once))

    def __repr__(self) -> str:
        return f"KeyState(last={self.last!r}, once={self.once!r})"

    def deciding(self) -> Op | None:
        """The operation whose value the property has, or None when the property is absent."""
        if self.last is not None and self.last.rank == SET:
            return self.last
        return self.once[0] if self.once else None

    def add(self, op: Op) -> KeyState:
        # `x._order < op._order` first: Op.__lt__ (a Python call) only decides the rare ties.
        last = self.last
        if last is not None and not (last._order < op._order or last < op):
            return self
        if op.rank != SET_ONCE:
            return KeyState(op, tuple(o for o in self.once if op < o) if self.once else ())
        once = self.once
        if not once or once[-1]._order < op._order or once[-1] < op:  # usually: later than every kept one
            # What _compact does to an operation appended at the end, without building a list:
            # it extends a run of one value (the run's last moves to it), or is simply appended
            # while there is room, or is dropped.
            n = len(once)
            if n >= 2 and once[-1].same_value(op) and once[-2].same_value(op):
                return KeyState(self.last, (*once[:-1], op))
            return KeyState(self.last, (*once, op)) if n < MAX_SET_ONCE else self
        at = bisect.bisect_left(once, op)
        if at < len(once) and once[at] == op:
            return self
        return KeyState(last=self.last, once=_compact((*once[:at], op, *once[at:]), at))

    def merge(self, other: KeyState) -> KeyState:
        merged = self
        for op in other.ops():
            merged = merged.add(op)
        return merged

    def ops(self) -> tuple[Op, ...]:
        return self.once if self.last is None else (self.last, *self.once)

    def to_json(self) -> dict[str, Any]:
        """The key's `properties_last_operation` entry. Cached: treat it as read-only."""
        if self._json is not None:
            return self._json
        # A `set` value is not repeated here: it is the value in the `properties` column.
        entry: dict[str, Any] = {"op": "set_once"}
        if self.last is not None:
            entry = {"op": _OP_NAMES[self.last.rank], "ts": _iso(self.last.ts), "tb": self.last.tiebreak}
        if self.once:
            entry["once"] = [[_iso(o.ts), o.tiebreak, o.value] for o in self.once]
        self._json = entry
        return entry


def _compact(once: tuple[Op, ...], at: int) -> tuple[Op, ...]:
    """Drop operations inside a run of one value around `at` (the run's first and last answer
    every question its interior could), then keep at most MAX_SET_ONCE, earliest first."""
    items = list(once)
    for i in (at + 1, at, at - 1):  # the new operation and its neighbours may now be interior
        if 0 < i < len(items) - 1 and items[i - 1].same_value(items[i]) and items[i].same_value(items[i + 1]):
            del items[i]
    return tuple(items[:MAX_SET_ONCE])


_NO_KEY = KeyState()


@dataclass(frozen=True)
class PropertyState:
    """The per-key states of one person. Treat `by_key` and `properties` as read-only: every
    change returns a copy."""

    by_key: Mapping[str, KeyState] = field(default_factory=dict)
    # `properties`, when already known (apply_event derives it from the previous state's).
    _properties: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def properties(self) -> dict[str, Any]:
        properties = self._properties
        if properties is None:
            properties = {name: op.value for name, s in self.by_key.items() if (op := s.deciding()) is not None}
            object.__setattr__(self, "_properties", properties)
        return properties

    def to_columns(self) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
        """`(properties, properties_last_updated_at, properties_last_operation)`, all JSON-ready.

        Keys set at an unknown time have no `properties_last_updated_at` entry."""
        properties: dict[str, Any] = {}
        updated_at: dict[str, str] = {}
        operations: dict[str, Any] = {}
        for name, s in self.by_key.items():
            operations[name] = s.to_json()
            op = s.deciding()
            if op is not None:
                properties[name] = op.value
                if op.ts is not None:
                    updated_at[name] = _iso(op.ts)
        return properties, updated_at, operations

    @classmethod
    def from_columns(cls, properties: Any, last_updated_at: Any = None, last_operation: Any = None) -> PropertyState:
        """Read the three columns back; rows PostHog wrote are accepted too.

        A key whose operation is PostHog's plain "set"/"set_once" (or missing), or whose entry
        disagrees with `properties` (someone else edited the row), counts as set at an unknown
        time: every timestamped `$set`/`$unset` supersedes it.
        """
        # PostHog's timestamps are write times, not event keys, and were not kept current on
        # every update, so they cannot order operations.
        del last_updated_at
        properties = properties if isinstance(properties, dict) else {}
        operations = last_operation if isinstance(last_operation, dict) else {}
        by_key: dict[str, KeyState] = {}
        for name in [*properties, *(k for k in operations if k not in properties)]:
            state = _read_key(name, properties, operations.get(name))
            if state is not None:
                by_key[name] = state
        return cls(by_key)


EMPTY = PropertyState({}, {})


def apply_event(
    state: PropertyState,
    *,
    set: Any = None,
    set_once: Any = None,
    unset: Any = None,
    timestamp: dt.datetime,
    tiebreak: str,
) -> tuple[PropertyState, bool]:
    """Apply one event's `$set`/`$set_once`/`$unset`; returns the new state and whether
    `properties` changed. Non-object `$set`/`$set_once` and a non-list, non-object `$unset`
    are ignored."""
    ts = _utc(timestamp)
    before = state.by_key
    by_key: dict[str, KeyState] | None = None  # copied on the first change
    touched: dict[str, None] = {}
    unsets = [(name, None) for name in _unset_keys(unset)]
    for rank, updates in ((SET_ONCE, _items(set_once)), (SET, _items(set)), (UNSET, unsets)):
        for name, value in updates:
            current = (before if by_key is None else by_key).get(name, _NO_KEY)
            added = current.add(Op(ts, tiebreak, rank, value))
            if added is not current:
                if by_key is None:
                    by_key = dict(before)
                by_key[name] = added
                touched[name] = None
    if by_key is None:
        return state, False
    # `properties` follows from the previous state's, when that is known, for the keys that changed.
    properties = state._properties
    changed = False
    for name in touched:
        after = by_key[name]
        if not _differs(before.get(name, _NO_KEY), after):
            continue
        if not changed:
            changed = True
            properties = None if properties is None else dict(properties)
        if properties is not None:
            op = after.deciding()
            if op is None:
                properties.pop(name, None)
            else:
                properties[name] = op.value
    return PropertyState(by_key, properties), changed


def initial(
    *,
    set: Any = None,
    set_once: Any = None,
    unset: Any = None,
    timestamp: dt.datetime,
    tiebreak: str,
) -> PropertyState:
    """The state of a new person. Unlike PostHog's creation, `$unset` is kept as a tombstone so
    that an older `$set` arriving later cannot resurrect the key."""
    state, _ = apply_event(EMPTY, set=set, set_once=set_once, unset=unset, timestamp=timestamp, tiebreak=tiebreak)
    return state


def merge(a: PropertyState, b: PropertyState) -> PropertyState:
    """The state that has seen both histories: commutative, associative, idempotent.

    PostHog merges persons with `{...other, ...into}`, so "into" wins every conflict whatever
    the event times, and the result depends on which side is which. Here the later operation
    wins, as if both persons' events had always belonged to one person. Values that both sides
    have "set at an unknown time" (PostHog-shaped rows) tie; the tie is broken by value, which
    is arbitrary but the same on every worker and in either argument order.
    """
    by_key = dict(a.by_key)
    for name, s in b.by_key.items():
        by_key[name] = by_key[name].merge(s) if name in by_key else s
    return PropertyState(by_key)


def _read_key(name: str, properties: dict[str, Any], entry: Any) -> KeyState | None:
    if isinstance(entry, dict):
        state = _parse_entry(entry, properties.get(name), name in properties)
        if _agrees(state, properties, name):
            return state if state.ops() else None
    if name in properties:
        return KeyState(last=Op(None, "", SET, properties[name]))
    return None


def _parse_entry(entry: dict[str, Any], value: Any, present: bool) -> KeyState:
    state = _NO_KEY
    kind = entry.get("op")
    if (kind == "set" and present) or kind == "unset":
        rank = SET if kind == "set" else UNSET
        state = state.add(Op(_parse_ts(entry.get("ts")), _str(entry.get("tb")), rank, value if rank == SET else None))
    once = entry.get("once")
    for item in once if isinstance(once, list) else ():
        if isinstance(item, list) and len(item) == 3:
            state = state.add(Op(_parse_ts(item[0]), _str(item[1]), SET_ONCE, item[2]))
    return state


def _agrees(state: KeyState, properties: dict[str, Any], name: str) -> bool:
    op = state.deciding()
    if op is None:
        return name not in properties
    return name in properties and op.canonical == _canonical(properties[name])


def _differs(before: KeyState, after: KeyState) -> bool:
    a, b = before.deciding(), after.deciding()
    if a is None or b is None:
        return a is not b
    return a is not b and not a.same_value(b)


def _items(updates: Any) -> list[tuple[str, Any]]:
    return list(updates.items()) if isinstance(updates, dict) else []


def _unset_keys(unset: Any) -> list[str]:
    if isinstance(unset, dict):
        return list(unset)
    if isinstance(unset, list):
        return [k for k in unset if isinstance(k, str)]
    return []


def _utc(timestamp: dt.datetime) -> dt.datetime:
    if timestamp.tzinfo is None:
        raise ValueError(f"timestamp must be timezone-aware, got {timestamp!r}")
    return timestamp.astimezone(dt.UTC)


@overload
def _iso(ts: dt.datetime) -> str: ...
@overload
def _iso(ts: None) -> None: ...
@functools.lru_cache(maxsize=1 << 16)  # one event's timestamp is written for each of its keys
def _iso(ts: dt.datetime | None) -> str | None:
    return None if ts is None else ts.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_ts(text: Any) -> dt.datetime | None:
    return _parse_ts_text(text) if isinstance(text, str) else None


@functools.lru_cache(maxsize=1 << 16)  # stored states repeat the same few timestamps
def _parse_ts_text(text: str) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _canonical(value: Any) -> str:
    try:  # orjson: several times faster on the hot path; same text for the same value, always
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # lone surrogates, integers beyond 64 bits
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr)
