"""Groups: JavaScript value rules, `$groups` / `$groupidentify` parsing, the property update rule,
and the step's batch logic over an in-memory store (the Postgres adapter: tests/integration)."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math

import pytest
import trio

from plugin_server.ingestion.event import GroupView, PipelineEvent, Source
from plugin_server.ingestion.groups import (
    GroupsStep,
    IdentifyTarget,
    group_entries,
    identify_target,
    js_string,
    js_to_number,
    js_truthy,
    loosely_equal,
    next_columns,
    storable,
    updated_properties,
)
from plugin_server.storage.groups import GroupColumns, GroupRecord, Upserted
from plugin_server.storage.teams import Team

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
NOW = T0 + dt.timedelta(hours=1)
TEAM = Team(id=7, uuid="00000000-0000-4000-8000-000000000007", name="t", api_token="tok", anonymize_ips=False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc", "abc"), ("", ""), (0, "0"), (-0.0, "0"), (42, "42"), (1.5, "1.5"), (1.0, "1"), (-2.5, "-2.5"),
        (1e20, "100000000000000000000"), (1e21, "1e+21"), (1.5e300, "1.5e+300"), (0.000001, "0.000001"),
        (1e-7, "1e-7"), (1.23e-18, "1.23e-18"), (0.1 + 0.2, "0.30000000000000004"),
        (2**53 + 1, "9007199254740992"), (10**400, "Infinity"), (True, "true"), (False, "false"), (None, "null"),
        ([1, [2, None], "a"], "1,2,,a"), ([], ""), ({"a": 1}, "[object Object]"),
    ],
)  # fmt: skip
def test_js_string(value, expected):
    assert js_string(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, False), (False, False), (0, False), (0.0, False), ("", False), (math.nan, False),
     (True, True), (1, True), ("0", True), ("false", True), ([], True), ({}, True)],
)  # fmt: skip
def test_js_truthy(value, expected):
    assert js_truthy(value) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", 0.0), ("  12 ", 12.0), ("1e3", 1000.0), (".5", 0.5), ("5.", 5.0), ("0x10", 16.0), ("0b11", 3.0),
     ("-Infinity", -math.inf), ("abc", math.nan), ("1_0", math.nan), ("-0x10", math.nan), ("inf", math.nan)],
)  # fmt: skip
def test_js_to_number(text, expected):
    got = js_to_number(text)
    assert (math.isnan(got) and math.isnan(expected)) or got == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("x", "x", True), ("x", "y", False), (1, 1.0, True), (1, "1", True), ("1.0", 1, True), (0, "", True),
        (True, 1, True), (True, "1", True), (True, "true", False), (False, 0, True), (None, None, True),
        (None, 0, False), (None, "", False), ("null", None, False), ([1, 2], "1,2", True), ([1], 1, True),
        ({"a": 1}, {"a": 1}, True), ({"a": 1, "b": [1]}, {"b": [1], "a": 1}, True), ([1, 2], [1, 2], True),
        ([1, 2], [2, 1], False), ({"a": True}, {"a": 1}, False), ({"a": 1}, "[object Object]", True),
        ({}, [], False), ("nan", math.nan, False),
    ],
)  # fmt: skip
def test_loosely_equal(a, b, expected):
    assert loosely_equal(a, b) is expected
    assert loosely_equal(b, a) is expected


@pytest.mark.parametrize(
    ("current", "group_set", "expected"),
    [
        ({}, {}, None),
        ({"a": 1}, {}, None),
        ({"a": 1}, {"a": 1}, None),
        ({"a": 1}, {"a": "1"}, None),  # loose: PostHog keeps the stored value
        ({"a": {"x": [1]}}, {"a": {"x": [1]}}, None),
        ({"a": 1}, {"a": 2}, {"a": 2}),
        ({"a": 1}, {"b": None}, {"a": 1, "b": None}),
        ({"a": 1, "b": 2}, {"b": 3, "c": 4}, {"a": 1, "b": 3, "c": 4}),
        ({"a": None}, {"a": 0}, {"a": 0}),
        ({"a": [1]}, {"a": [1, 2]}, {"a": [1, 2]}),
    ],
    ids=["empty", "no-set", "same", "loose-same", "same-object", "changed", "new-null", "overwrite-and-add",
         "null-to-zero", "array-changed"],
)  # fmt: skip
def test_updated_properties(current, group_set, expected):
    assert updated_properties(current, group_set) == expected


def record(properties: dict, *, created_at: dt.datetime = T0, version: int = 1) -> GroupRecord:
    return GroupRecord(1, TEAM.id, 0, "k", properties, created_at, version)


@pytest.mark.parametrize(
    ("existing", "group_set", "timestamp", "expected"),
    [
        (None, {"a": 1}, T0, GroupColumns({"a": 1}, T0)),
        (None, {}, NOW + dt.timedelta(hours=1), GroupColumns({}, NOW)),  # never later than now
        (record({"a": 1}), {"a": 1}, T0 + dt.timedelta(days=1), None),
        (record({"a": 1}), {"a": 1}, T0 - dt.timedelta(days=1), GroupColumns({"a": 1}, T0 - dt.timedelta(days=1))),
        (record({"a": 1}), {"a": 2}, T0 + dt.timedelta(days=1), GroupColumns({"a": 2}, T0)),
    ],
    ids=["new", "new-future", "unchanged", "earlier-created-at", "changed-keeps-created-at"],
)  # fmt: skip
def test_next_columns(existing, group_set, timestamp, expected):
    assert next_columns(existing, group_set, timestamp=timestamp, now=NOW) == expected


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        ({}, []),
        ({"$groups": None}, []),
        ({"$groups": "company"}, []),
        ({"$groups": ["company", "a"]}, []),
        ({"$groups": {"organization": "org-1", "instance": 5}}, [("organization", "org-1"), ("instance", 5)]),
        ({"$groups": {"b": "1", "a": "2"}}, [("b", "1"), ("a", "2")]),  # object order, not sorted
    ],
)  # fmt: skip
def test_group_entries(properties, expected):
    assert group_entries(properties) == expected


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        ({"$group_type": "company", "$group_key": "a", "$group_set": {"n": 1}}, IdentifyTarget("company", "a", {"n": 1})),
        ({"$group_type": "company", "$group_key": 12}, IdentifyTarget("company", "12", {})),
        ({"$group_type": "company", "$group_key": 1.0, "$group_set": "x"}, IdentifyTarget("company", "1", {})),
        ({"$group_type": "company", "$group_key": "0"}, IdentifyTarget("company", "0", {})),
        ({"$group_type": "company", "$group_key": 0}, None),
        ({"$group_type": "company", "$group_key": ""}, None),
        ({"$group_type": "company", "$group_key": None}, None),
        ({"$group_type": "company"}, None),
        ({"$group_type": "", "$group_key": "a"}, None),
        ({"$group_key": "a"}, None),
    ],
)  # fmt: skip
def test_identify_target(properties, expected):
    assert identify_target(properties) == expected


@pytest.mark.parametrize(
    ("text", "expected"), [("a", True), ("x" * 400, True), ("x" * 401, False), ("a\x00b", False), ("\ud800", False)]
)
def test_storable(text, expected):
    assert storable(text) is expected


# -- The step over an in-memory store -----------------------------------------------------------


class MemoryGroupStore:
    """GroupStore's contract in memory: unique (team, type) and (team, index), row versions."""

    def __init__(self) -> None:
        self.types: dict[int, dict[str, int]] = {}
        self.groups: dict[tuple[int, int, str], GroupRecord] = {}
        self.ids = itertools.count(1)
        self.queries = 0

    async def _io(self) -> None:
        self.queries += 1
        await trio.lowlevel.checkpoint()  # let other tasks run, as a round trip would

    async def type_mappings(self, team_ids):
        await self._io()
        return {t: dict(self.types[t]) for t in set(team_ids) if t in self.types}

    async def add_type(self, team_id, group_type, index):
        await self._io()
        known = self.types.setdefault(team_id, {})
        if group_type in known:
            return known[group_type]
        if index in known.values():
            return None
        known[group_type] = index
        return index

    async def fetch(self, keys):
        await self._io()
        return {k: self.groups[k] for k in set(keys) if k in self.groups}

    async def upsert(self, team_id, index, key, compute):
        await self._io()
        existing = self.groups.get((team_id, index, key))
        columns = compute(existing)
        if columns is None:
            return Upserted(existing, written=False)
        new = GroupRecord(
            existing.id if existing else next(self.ids), team_id, index, key, columns.group_properties,
            columns.created_at, (existing.version if existing else 0) + 1,
        )  # fmt: skip
        self.groups[(team_id, index, key)] = new
        return Upserted(new, written=True)


def event(name: str = "$pageview", *, at: dt.datetime = T0, distinct_id: str = "d", **properties) -> PipelineEvent:
    return PipelineEvent(
        source=Source("events", 0, 1, 1_700_000_000_000), raw=b"{}", uuid=f"00000000-0000-4000-8000-{next(_UUIDS):012d}",
        distinct_id=distinct_id, event=name, properties=properties, now=T0.isoformat(), token=TEAM.api_token,
        team_id=TEAM.id, team=TEAM, resolved_timestamp=at,
    )  # fmt: skip


_UUIDS = itertools.count(1)


async def run(step: GroupsStep, *events: PipelineEvent, confirm: bool = True):
    batch = await step.prefetch(events, now=NOW)
    out = [(await step.process(e, batch)).value for e in events]
    if confirm:
        step.confirm(batch)
    return out, batch


async def test_groups_get_indexes_in_order_and_properties():
    step = GroupsStep(store=MemoryGroupStore())
    (first,), _ = await run(step, event(**{"$groups": {"company": "a", "project": 5}}))
    assert first.properties["$group_0"] == "a" and first.properties["$group_1"] == "5"
    assert first.groups == (GroupView(0, "a", {}, None), GroupView(1, "5", {}, None))
    assert first.warnings == ()


async def test_a_sixth_type_is_ignored_with_a_warning():
    store = MemoryGroupStore()
    store.types[TEAM.id] = {f"t{i}": i for i in range(5)}
    step = GroupsStep(store=store)
    e = event(**{"$groups": {"t4": "x", "sixth": "y"}})
    (out,), _ = await run(step, e)
    assert [k for k in out.properties if k.startswith("$group_")] == ["$group_4"]
    assert [(w.type, w.details) for w in out.warnings] == [
        ("group_type_limit_reached", {"groupType": "sixth", "eventUuid": e.uuid})
    ]
    assert store.types[TEAM.id] == {f"t{i}": i for i in range(5)}


async def test_an_index_taken_by_another_worker_moves_to_the_next():
    store = MemoryGroupStore()
    step = GroupsStep(store=store)
    batch = await step.prefetch([event(**{"$groups": {"mine": "a"}})], now=NOW)
    store.types[TEAM.id] = {"theirs": 0}  # another worker, after our prefetch
    out = (await step.process(event(**{"$groups": {"mine": "a"}}), batch)).value
    assert out.properties["$group_1"] == "a"
    assert store.types[TEAM.id] == {"theirs": 0, "mine": 1}


async def test_groupidentify_creates_updates_and_mirrors_only_changes():
    store = MemoryGroupStore()
    step = GroupsStep(store=store)
    identify = {"$group_type": "company", "$group_key": 42, "$group_set": {"name": "Acme"}}
    _, batch = await run(step, event("$groupidentify", **identify))
    assert store.groups[(TEAM.id, 0, "42")].version == 1
    (row,) = [json.loads(r.line) for r in batch.rows]
    assert row == {
        "group_type_index": 0, "group_key": "42", "created_at": "2024-05-01 12:00:00.000", "team_id": TEAM.id,
        "group_properties": '{"name":"Acme"}', "_timestamp": int(NOW.timestamp()), "_offset": 0,
    }  # fmt: skip
    _, batch = await run(step, event("$groupidentify", at=T0 + dt.timedelta(minutes=1), **identify))
    assert store.groups[(TEAM.id, 0, "42")].version == 1 and batch.rows == []
    changed = {**identify, "$group_set": {"name": "Acme", "plan": "pro"}}
    _, batch = await run(step, event("$groupidentify", at=T0 + dt.timedelta(minutes=2), **changed))
    assert store.groups[(TEAM.id, 0, "42")].version == 2 and len(batch.rows) == 1


async def test_unconfirmed_state_is_re_emitted_by_a_new_batch():
    """A crash after the Postgres write lost the row: the re-delivered batch writes it again."""
    store = MemoryGroupStore()
    step = GroupsStep(store=store)
    identify = event("$groupidentify", **{"$group_type": "company", "$group_key": "a", "$group_set": {"n": 1}})
    await run(step, identify, confirm=False)
    restarted = GroupsStep(store=store)
    _, batch = await run(restarted, identify)
    assert store.groups[(TEAM.id, 0, "a")].version == 1 and len(batch.rows) == 1
    _, batch = await run(restarted, identify)
    assert batch.rows == []


async def test_one_batch_coalesces_rows_and_events_see_the_state_as_of_themselves():
    store = MemoryGroupStore()
    step = GroupsStep(store=store)
    events = [
        event("$groupidentify", **{"$group_type": "company", "$group_key": "a", "$group_set": {"n": i}, "$groups": {"company": "a"}})
        for i in range(3)
    ]  # fmt: skip
    out, batch = await run(step, *events)
    assert [e.groups[0].properties for e in out] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert [json.loads(json.loads(r.line)["group_properties"]) for r in batch.rows] == [{"n": 2}]
    assert store.groups[(TEAM.id, 0, "a")].version == 3


async def test_prefetch_is_two_queries_and_nothing_without_groups():
    store = MemoryGroupStore()
    store.types[TEAM.id] = {"company": 0}
    step = GroupsStep(store=store)
    await step.prefetch([event(), event("$identify")], now=NOW)
    assert store.queries == 0
    await step.prefetch([event(**{"$groups": {"company": "a"}}), event(**{"$groups": {"company": "b"}})], now=NOW)
    assert store.queries == 2


async def test_concurrent_events_of_one_batch_share_type_creation():
    store = MemoryGroupStore()
    step = GroupsStep(store=store)
    events = [event(distinct_id=f"d{i}", **{"$groups": {f"type{i % 7}": "k"}}) for i in range(21)]
    batch = await step.prefetch(events, now=NOW)
    results = {}

    async def one(e):
        results[e.uuid] = (await step.process(e, batch)).value

    async with trio.open_nursery() as nursery:
        for e in events:
            nursery.start_soon(one, e)
    assert sorted(store.types[TEAM.id].values()) == [0, 1, 2, 3, 4]
    for out in results.values():
        (group_type,) = out.properties["$groups"]
        index = store.types[TEAM.id].get(group_type)
        assert (index is None) == bool(out.warnings)
        assert out.groups == (() if index is None else (GroupView(index, "k", {}, None),))


async def test_null_keys_and_unstorable_keys():
    step = GroupsStep(store=MemoryGroupStore())
    (out,), batch = await run(
        step,
        event("$groupidentify", **{"$group_type": "company", "$group_key": "x" * 401, "$groups": {"company": None, "p": "y" * 401}}),
    )  # fmt: skip
    assert "$group_0" not in out.properties and out.properties["$group_1"] == "y" * 401
    assert out.groups == (GroupView(1, "y" * 401, {}, None),) and batch.rows == []


async def test_events_without_groups_pass_unchanged():
    step = GroupsStep(store=MemoryGroupStore())
    e = event(**{"$groups": "not-an-object"})
    (out,), _ = await run(step, e)
    assert out is e
