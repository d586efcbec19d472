"""One behaviour suite for the group store: the Postgres adapter and the in-memory fake.

What the groups step relies on: a type keeps the index it has and an index taken by another type
is None (PostHog's insertGroupType), a group is created at version 1 and each write adds one,
`compute` sees the row as it is, and values come back as Postgres stores them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
import trio

from plugin_server.core.errors import StorageError
from plugin_server.storage.groups import GroupColumns, GroupRecord, GroupStore, GroupStoreLike, Upserted
from plugin_server.storage.postgres import open_postgres
from plugin_server.storage.teams import TeamStore
from plugin_server.testing.groups import InMemoryGroupStore

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


@dataclass
class Subject:
    store: GroupStoreLike
    team: int
    other_team: int


@asynccontextmanager
async def real_store(services) -> AsyncIterator[Subject]:
    async with open_postgres(services.database_url, max_size=8) as pg:
        teams = TeamStore(pg=pg)
        yield Subject(GroupStore(pg=pg), (await teams.create("groups-a")).id, (await teams.create("groups-b")).id)


@asynccontextmanager
async def fake_store(services) -> AsyncIterator[Subject]:
    yield Subject(InMemoryGroupStore(), 1, 2)


@pytest.fixture(params=[real_store, fake_store], ids=["postgres", "in-memory"])
async def subject(request, aio, services):
    async with request.param(services) as opened:
        with trio.fail_after(30):
            yield opened


def set_to(properties: dict, created_at: dt.datetime = T0):
    """A `compute` that writes these columns whatever the row holds."""
    return lambda existing: GroupColumns(properties, created_at)


# -- types -----------------------------------------------------------------------------------------


async def test_the_store_claims_indexes_like_posthog(subject):
    """(Was tests/integration/test_groups.py's test of the same name.)"""
    s = subject
    team_id = s.team
    assert await s.store.add_type(team_id, "company", 0) == 0
    assert await s.store.add_type(team_id, "company", 3) == 0  # the type keeps its index
    assert await s.store.add_type(team_id, "project", 0) is None  # index 0 is taken
    assert await s.store.add_type(team_id, "project", 1) == 1
    assert await s.store.type_mappings([team_id]) == {team_id: {"company": 0, "project": 1}}


async def test_type_mappings_are_per_team_in_index_order(subject):
    s = subject
    for group_type, index in [("c", 2), ("a", 0), ("b", 1)]:
        assert await s.store.add_type(s.team, group_type, index) == index
    assert await s.store.add_type(s.other_team, "b", 0) == 0
    found = await s.store.type_mappings([s.team, s.other_team, s.team, 2_000_000_000])
    assert found == {s.team: {"a": 0, "b": 1, "c": 2}, s.other_team: {"b": 0}}
    assert list(found[s.team]) == ["a", "b", "c"]
    assert await s.store.type_mappings([]) == {} and await s.store.type_mappings([2_000_000_000]) == {}


@pytest.mark.parametrize("index", [5, -1])
async def test_an_index_outside_0_to_4_is_refused_even_for_a_known_type(subject, index):
    s = subject
    await s.store.add_type(s.team, "company", 0)
    for group_type in ("company", "project"):
        with pytest.raises(StorageError):
            await s.store.add_type(s.team, group_type, index)
    assert await s.store.type_mappings([s.team]) == {s.team: {"company": 0}}


async def test_types_are_varchar_400_without_nul(subject):
    s = subject
    assert await s.store.add_type(s.team, "t" * 400, 0) == 0
    for bad in ("t" * 401, "a\x00b"):
        with pytest.raises(StorageError):
            await s.store.add_type(s.team, bad, 1)
    assert await s.store.type_mappings([s.team]) == {s.team: {"t" * 400: 0}}


# -- groups ----------------------------------------------------------------------------------------


async def test_an_upsert_creates_at_version_one_then_adds_one_per_write(subject):
    s = subject
    seen: list[GroupRecord | None] = []

    def add_one(existing: GroupRecord | None) -> GroupColumns:
        seen.append(existing)
        properties = dict(existing.group_properties) if existing else {}
        properties[f"n{len(properties)}"] = len(properties)
        return GroupColumns(properties, T0 if existing is None else existing.created_at - dt.timedelta(hours=1))

    created = await s.store.upsert(s.team, 0, "acme", add_one)
    assert created.written and seen == [None]
    record = created.record
    assert (record.team_id, record.group_type_index, record.group_key, record.version) == (s.team, 0, "acme", 1)
    assert (record.group_properties, record.created_at) == ({"n0": 0}, T0)
    assert record.key == (s.team, 0, "acme")
    updated = await s.store.upsert(s.team, 0, "acme", add_one)
    assert seen[1] == record
    assert updated == Upserted(
        GroupRecord(record.id, s.team, 0, "acme", {"n0": 0, "n1": 1}, T0 - dt.timedelta(hours=1), 2), written=True
    )
    assert await s.store.fetch([(s.team, 0, "acme")]) == {(s.team, 0, "acme"): updated.record}


async def test_an_upsert_whose_compute_says_no_change_writes_nothing(subject):
    s = subject
    assert await s.store.upsert(s.team, 0, "none", lambda existing: None) == Upserted(None, written=False)
    assert await s.store.fetch([(s.team, 0, "none")]) == {}
    created = (await s.store.upsert(s.team, 0, "some", set_to({"a": 1}))).record
    assert await s.store.upsert(s.team, 0, "some", lambda existing: None) == Upserted(created, written=False)
    assert (await s.store.fetch([(s.team, 0, "some")]))[(s.team, 0, "some")].version == 1


async def test_groups_are_keyed_by_team_index_and_key(subject):
    s = subject
    keys = [(s.team, 0, "k"), (s.team, 1, "k"), (s.other_team, 0, "k"), (s.team, 0, "K")]
    for n, (team, index, key) in enumerate(keys):
        await s.store.upsert(team, index, key, set_to({"n": n}))
    found = await s.store.fetch([*keys, (s.team, 2, "k"), (s.team, 0, "x" * 500)])
    assert {k: r.group_properties["n"] for k, r in found.items()} == {k: n for n, k in enumerate(keys)}
    assert len({r.id for r in found.values()}) == 4
    assert await s.store.fetch([]) == {}


async def test_group_keys_are_varchar_400_without_nul(subject):
    s = subject
    longest = (await s.store.upsert(s.team, 0, "k" * 400, set_to({}))).record
    assert longest.group_key == "k" * 400
    for bad in ("k" * 401, "k\x00"):
        with pytest.raises(StorageError):
            await s.store.upsert(s.team, 0, bad, set_to({"a": 1}))
    with pytest.raises(StorageError):
        await s.store.fetch([(s.team, 0, "k\x00")])
    assert await s.store.fetch([(s.team, 0, "k" * 401)]) == {}


async def test_values_come_back_as_jsonb_and_timestamptz_store_them(subject):
    s = subject
    east = dt.timezone(dt.timedelta(hours=-5))
    written = await s.store.upsert(
        s.team, 0, "v", set_to({"bb": 1, "a": "x\x00", "c": (1,), "n": float("nan")}, T0.astimezone(east))
    )
    for record in (written.record, (await s.store.fetch([(s.team, 0, "v")]))[(s.team, 0, "v")]):
        assert record.group_properties == {"a": "x\ufffd", "c": [1], "n": None, "bb": 1}
        assert list(record.group_properties) == ["a", "c", "n", "bb"]
        assert record.created_at == T0 and record.created_at.utcoffset() == dt.timedelta(0)


async def test_unencodable_properties_are_refused_and_nothing_is_written(subject):
    s = subject
    before = (await s.store.upsert(s.team, 0, "g", set_to({"ok": True}))).record
    for key in ("g", "new"):
        with pytest.raises(StorageError):
            await s.store.upsert(s.team, 0, key, set_to({"o": object()}))
    assert await s.store.fetch([(s.team, 0, "g"), (s.team, 0, "new")]) == {(s.team, 0, "g"): before}


async def test_concurrent_upserts_of_a_new_group_all_land(subject):
    """Inserts racing on a new group: the losers re-run under the winner's row lock.
    (Was tests/integration/test_groups.py's test of the same name.)"""
    s = subject

    def add_one(existing):
        properties = dict(existing.group_properties) if existing else {}
        properties[str(len(properties))] = True
        return GroupColumns(properties, T0)

    for k in range(5):
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(s.store.upsert, s.team, 0, f"new-{k}", add_one)
        group = (await s.store.fetch([(s.team, 0, f"new-{k}")]))[(s.team, 0, f"new-{k}")]
        assert group.version == 4 and len(group.group_properties) == 4
