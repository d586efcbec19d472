"""One behaviour suite for the person store: the Postgres adapter and the in-memory fake.

What the persons step relies on: unique keys give AlreadyExists (and roll the whole creation
back), stale versions are skipped or refused, a merged-away person is gone, merges move distinct
ids and leave a tombstone in the outbox, and values come back as Postgres stores them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid as uuid_lib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import trio

from plugin_server.core.errors import StorageError
from plugin_server.storage.persons import (
    AlreadyExists,
    Gone,
    PersonColumns,
    PersonRecord,
    PersonStore,
    PersonStoreLike,
    VersionConflict,
)
from plugin_server.storage.postgres import open_postgres
from plugin_server.storage.teams import TeamStore
from plugin_server.testing.persons import InMemoryPersonStore

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


@dataclass
class Subject:
    store: PersonStoreLike
    team: int
    other_team: int


@asynccontextmanager
async def real_store(services) -> AsyncIterator[Subject]:
    async with open_postgres(services.database_url, max_size=4) as pg:
        teams = TeamStore(pg=pg)
        yield Subject(PersonStore(pg=pg), (await teams.create("persons-a")).id, (await teams.create("persons-b")).id)


@asynccontextmanager
async def fake_store(services) -> AsyncIterator[Subject]:
    yield Subject(InMemoryPersonStore(), 1, 2)


@pytest.fixture(params=[real_store, fake_store], ids=["postgres", "in-memory"])
async def subject(request, aio, services):
    async with request.param(services) as opened:
        with trio.fail_after(30):
            yield opened


def columns(properties: dict[str, Any] | None = None, *, identified: bool = False, at: dt.datetime = T0):
    properties = properties or {}
    return PersonColumns(properties, {k: "2024-05-01T12:00:00Z" for k in properties}, {}, identified, at)


def new_uuid() -> str:
    return str(uuid_lib.uuid4())


async def create(s: Subject, *distinct_ids: str, team: int | None = None, **properties) -> PersonRecord:
    return await s.store.create(
        team_id=s.team if team is None else team, uuid=new_uuid(), distinct_ids=list(distinct_ids),
        columns=columns(properties),
    )  # fmt: skip


async def person_of(s: Subject, distinct_id: str, *, team: int | None = None) -> PersonRecord | None:
    key = (s.team if team is None else team, distinct_id)
    found = await s.store.fetch([key])
    return found[key][0] if key in found else None


async def ids_of(s: Subject, person: PersonRecord) -> list[str]:
    return [d for d, _ in await s.store.distinct_ids_of(person)]


# -- creating and reading ------------------------------------------------------------------------


async def test_a_created_person_owns_its_distinct_ids_at_version_zero(subject):
    s = subject
    uuid = new_uuid()
    created = await s.store.create(
        team_id=s.team, uuid=uuid.upper(), distinct_ids=["a", "b", "a"], columns=columns({"x": 1}, identified=True)
    )
    assert (created.uuid, created.team_id, created.version, created.known) == (uuid, s.team, 0, False)
    assert created.properties == {"x": 1} and created.properties_last_updated_at == {"x": "2024-05-01T12:00:00Z"}
    assert created.properties_last_operation == {} and created.is_identified and created.created_at == T0
    found = await s.store.fetch([(s.team, "a"), (s.team, "b"), (s.team, "a"), (s.team, "nobody")])
    assert found == {(s.team, "a"): (created, 0), (s.team, "b"): (created, 0)}
    assert await s.store.distinct_ids_of(created) == [("a", 0), ("b", 0)]  # in the order given, once each


async def test_fetch_finds_nothing_for_unknown_ids_other_teams_or_no_keys(subject):
    s = subject
    await create(s, "mine")
    assert await s.store.fetch([]) == {}
    assert await s.store.fetch([(s.other_team, "mine"), (s.team, "x" * 500)]) == {}
    assert await s.store.distinct_ids_of(dataclasses.replace(await person_of(s, "mine"), id=2**62)) == []


async def test_a_taken_uuid_or_distinct_id_is_already_exists_and_creates_nothing(subject):
    s = subject
    first = await create(s, "taken")
    with pytest.raises(AlreadyExists):
        await s.store.create(team_id=s.team, uuid=first.uuid, distinct_ids=["free-1"], columns=columns())
    retry_uuid = new_uuid()
    with pytest.raises(AlreadyExists):
        await s.store.create(team_id=s.team, uuid=retry_uuid, distinct_ids=["free-2", "taken"], columns=columns())
    assert await person_of(s, "free-1") is None and await person_of(s, "free-2") is None  # rolled back whole
    assert await ids_of(s, first) == ["taken"]
    again = await s.store.create(team_id=s.team, uuid=retry_uuid, distinct_ids=["free-2"], columns=columns())
    assert again.uuid == retry_uuid  # the failed attempt left no person behind


async def test_teams_do_not_share_uuids_or_distinct_ids(subject):
    s = subject
    uuid = new_uuid()
    one = await s.store.create(team_id=s.team, uuid=uuid, distinct_ids=["shared"], columns=columns({"team": 1}))
    two = await s.store.create(team_id=s.other_team, uuid=uuid, distinct_ids=["shared"], columns=columns({"team": 2}))
    assert one.id != two.id
    assert (await person_of(s, "shared")).properties == {"team": 1}
    assert (await person_of(s, "shared", team=s.other_team)).properties == {"team": 2}


async def test_known_versions_come_back_without_their_properties(subject):
    s = subject
    a, b = await create(s, "a", p="a"), await create(s, "b", p="b")
    keys = [(s.team, "a"), (s.team, "b")]
    found = await s.store.fetch(keys, known={a.id: a.version, b.id: b.version + 1, 2**62: 0})
    held, stale = found[(s.team, "a")][0], found[(s.team, "b")][0]
    assert held.known and held.properties == held.properties_last_updated_at == held.properties_last_operation == {}
    assert (held.id, held.uuid, held.version, held.created_at) == (a.id, a.uuid, a.version, a.created_at)
    assert stale == b and not stale.known  # a version the caller does not hold: sent in full
    assert await s.store.fetch(keys, known={}) == await s.store.fetch(keys)
    assert not any(r.known for r, _ in (await s.store.fetch(keys)).values())


async def test_records_are_copies(subject):
    s = subject
    person = await create(s, "copy", nested={"k": [1]})
    person.properties["nested"]["k"].append(2)
    assert (await person_of(s, "copy")).properties == {"nested": {"k": [1]}}


# -- linking ---------------------------------------------------------------------------------------


async def test_a_linked_distinct_id_comes_last_at_version_zero(subject):
    s = subject
    person = await create(s, "first", "second")
    await s.store.add_distinct_id(person, "third")
    assert await s.store.distinct_ids_of(person) == [("first", 0), ("second", 0), ("third", 0)]
    assert (await person_of(s, "third")).id == person.id


async def test_linking_a_taken_distinct_id_is_already_exists(subject):
    s = subject
    mine, theirs = await create(s, "mine"), await create(s, "theirs")
    for person in (mine, theirs):
        with pytest.raises(AlreadyExists):
            await s.store.add_distinct_id(person, "theirs")
    assert await ids_of(s, mine) == ["mine"] and await ids_of(s, theirs) == ["theirs"]


async def test_linking_to_a_merged_away_person_is_a_storage_error_not_already_exists(subject):
    """Pinned as it is: the row's foreign key refuses it, a permanent StorageError rather than
    AlreadyExists, so the persons step, which re-reads only on AlreadyExists and VersionConflict,
    does not retry it as a lost race."""
    s = subject
    into, other = await create(s, "into"), await create(s, "other")
    await s.store.merge(into=into, other=other, columns=columns())
    with pytest.raises(StorageError) as raised:
        await s.store.add_distinct_id(other, "late")
    assert not isinstance(raised.value, AlreadyExists) and not raised.value.retryable
    assert await person_of(s, "late") is None


# -- writing ---------------------------------------------------------------------------------------


async def test_update_many_returns_what_postgres_now_holds_and_skips_stale_versions(subject):
    """(Was tests/integration/test_persons.py's test of the same name.)"""
    s = subject
    fresh, stale = await create(s, "fresh"), await create(s, "stale")
    later = T0 + dt.timedelta(hours=1)
    written_columns = PersonColumns(
        {"a": [1, {"b": "ü"}]}, {"a": "2024-05-01T13:00:00.000000Z"}, {"a": {"op": "set"}}, True, later
    )
    stale_read = dataclasses.replace(stale, version=stale.version - 1)  # another worker wrote it since
    written = await s.store.update_many([(fresh, written_columns), (stale_read, written_columns)])
    assert list(written) == [fresh.id]
    assert written[fresh.id] == await person_of(s, "fresh")
    assert (await person_of(s, "stale")) == stale  # untouched
    now = written[fresh.id]
    assert (now.version, now.properties, now.properties_last_operation) == (
        1,
        {"a": [1, {"b": "ü"}]},
        {"a": {"op": "set"}},
    )
    assert now.is_identified and now.created_at == later
    assert await s.store.update_many([]) == {}


async def test_update_many_skips_a_person_merged_away(subject):
    s = subject
    into, other = await create(s, "into"), await create(s, "other")
    await s.store.merge(into=into, other=other, columns=columns())
    assert await s.store.update_many([(other, columns({"late": True}))]) == {}


async def test_update_locked_computes_from_the_row_as_it_is_now(subject):
    s = subject
    person = await create(s, "hot", n=0)
    await s.store.update_many([(person, columns({"n": 1}))])  # another worker's write
    seen = []

    def compute(latest: PersonRecord) -> PersonColumns:
        seen.append(latest)
        return columns({"n": latest.properties["n"] + 10})

    updated = await s.store.update_locked(person, compute)
    assert [(r.version, r.properties) for r in seen] == [(1, {"n": 1})] and not seen[0].known
    assert (updated.version, updated.properties) == (2, {"n": 11})
    assert updated == await person_of(s, "hot")


async def test_update_locked_of_a_merged_away_person_is_gone(subject):
    s = subject
    into, other = await create(s, "into"), await create(s, "other")
    await s.store.merge(into=into, other=other, columns=columns())
    with pytest.raises(Gone):
        await s.store.update_locked(other, lambda latest: columns())


async def test_update_locked_writes_nothing_when_compute_raises(subject):
    s = subject
    person = await create(s, "p", n=0)

    def compute(latest: PersonRecord) -> PersonColumns:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await s.store.update_locked(person, compute)
    assert await person_of(s, "p") == person


# -- merging ---------------------------------------------------------------------------------------


async def test_a_merge_moves_the_ids_deletes_the_other_and_leaves_its_tombstone(subject):
    s = subject
    into = await create(s, "user", a=1)
    other = await s.store.create(
        team_id=s.team, uuid=new_uuid(), distinct_ids=["anon-1", "anon-2"],
        columns=columns({"b": 2}, identified=True, at=T0 - dt.timedelta(days=1)),
    )  # fmt: skip
    result = await s.store.merge(into=into, other=other, columns=columns({"a": 1, "b": 2}, at=other.created_at))
    assert result.into == await person_of(s, "user")
    assert (result.into.id, result.into.version, result.into.properties) == (into.id, 1, {"a": 1, "b": 2})
    assert result.into.created_at == other.created_at
    assert sorted(result.moved) == [("anon-1", 1), ("anon-2", 1)]
    assert await s.store.distinct_ids_of(into) == [("user", 0), ("anon-1", 1), ("anon-2", 1)]
    assert await person_of(s, "anon-1") == result.into
    deleted = result.deleted
    assert (deleted.team_id, deleted.uuid, deleted.person_id, deleted.version) == (s.team, other.uuid, other.id, 0)
    assert deleted.is_identified and deleted.created_at == other.created_at
    assert await s.store.tombstones_of(result.into) == [deleted]
    assert await s.store.distinct_ids_of(other) == [] and await s.store.tombstones_of(other) == []


async def test_tombstones_follow_the_survivor_of_the_next_merge(subject):
    s = subject
    first, second, third = await create(s, "1"), await create(s, "2"), await create(s, "3")
    one = await s.store.merge(into=second, other=first, columns=columns())
    two = await s.store.merge(into=third, other=one.into, columns=columns())
    assert sorted(await s.store.tombstones_of(third), key=lambda t: t.person_id) == sorted(
        [one.deleted, two.deleted], key=lambda t: t.person_id
    )
    assert await s.store.tombstones_of(one.into) == []
    assert two.deleted.version == 1  # second's last version: the first merge wrote it
    assert sorted(two.moved) == [("1", 2), ("2", 1)]  # "1" moved twice


@pytest.mark.parametrize("stale", ["into", "other"])
async def test_a_merge_of_a_stale_read_is_a_version_conflict_and_changes_nothing(subject, stale):
    s = subject
    into, other = await create(s, "into"), await create(s, "other")
    (newer,) = (await s.store.update_many([(into if stale == "into" else other, columns({"newer": True}))])).values()
    with pytest.raises(VersionConflict):
        await s.store.merge(into=into, other=other, columns=columns({"merged": True}))
    assert await person_of(s, stale) == newer
    assert await person_of(s, "other" if stale == "into" else "into") == (other if stale == "into" else into)
    assert await s.store.tombstones_of(into) == []


async def test_a_merge_of_an_already_merged_person_is_a_version_conflict(subject):
    s = subject
    into, other, third = await create(s, "into"), await create(s, "other"), await create(s, "third")
    await s.store.merge(into=into, other=other, columns=columns())
    with pytest.raises(VersionConflict):
        await s.store.merge(into=third, other=other, columns=columns())
    with pytest.raises(VersionConflict):
        await s.store.merge(into=other, other=third, columns=columns())
    assert await ids_of(s, third) == ["third"] and (await person_of(s, "third")).version == 0


async def test_a_merge_of_a_person_with_itself_is_refused_and_changes_nothing(subject):
    s = subject
    person = await create(s, "self")
    with pytest.raises(StorageError):
        await s.store.merge(into=person, other=person, columns=columns({"x": 1}))
    assert await person_of(s, "self") == person and await s.store.distinct_ids_of(person) == [("self", 0)]


# -- values and malformed input --------------------------------------------------------------------


async def test_values_come_back_as_jsonb_and_timestamptz_store_them(subject):
    s = subject
    sent = {"b": 1, "a": "x\x00y", "aa": (1, 2.0), "z": {"k2": 1, "k": 2}, "nan": float("nan"), "when": T0}
    east = dt.timezone(dt.timedelta(hours=2))
    person = await s.store.create(
        team_id=s.team, uuid=new_uuid(), distinct_ids=["v"], columns=PersonColumns(sent, {}, {}, False, T0.astimezone(east))
    )  # fmt: skip
    for record in (person, await person_of(s, "v")):
        assert record.properties == {
            "a": "x\ufffdy", "b": 1, "z": {"k": 2, "k2": 1}, "aa": [1, 2.0], "nan": None, "when": "2024-05-01T12:00:00+00:00"
        }  # fmt: skip
        assert list(record.properties) == ["a", "b", "z", "aa", "nan", "when"]  # jsonb's key order
        assert list(record.properties["z"]) == ["k", "k2"]
        assert record.created_at == T0 and record.created_at.utcoffset() == dt.timedelta(0)
    # what orjson refuses goes through the standard library: lone surrogates, keys that are not strings
    odd = await s.store.create(
        team_id=s.team, uuid=new_uuid(), distinct_ids=["odd"], columns=PersonColumns({"s": "\ud800", 7: "i"}, {}, {}, False, T0)
    )  # fmt: skip
    assert odd.properties == (await person_of(s, "odd")).properties == {"7": "i", "s": "\\ud800"}
    naive = await s.store.create(
        team_id=s.team, uuid=new_uuid(), distinct_ids=["naive"], columns=PersonColumns({}, {}, {}, False, dt.datetime(2024, 1, 1))
    )  # fmt: skip
    assert naive.created_at == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


async def test_unencodable_values_are_refused_and_nothing_is_written(subject):
    s = subject
    person = await create(s, "p", n=1)
    # a datetime only orjson can write, beside what only the standard library can; NaN likewise
    for n, bad in enumerate([{"when": T0, "big": 2**70}, {"o": object()}, {"nan": float("nan"), "s": "\ud800"}]):
        with pytest.raises(StorageError):
            await s.store.create(team_id=s.team, uuid=new_uuid(), distinct_ids=["never"], columns=columns(bad))
        with pytest.raises(StorageError):
            await s.store.update_many([(person, columns({"ok": 1})), (person, columns(bad))])
        with pytest.raises(StorageError):
            await s.store.merge(into=person, other=await create(s, f"other-{n}"), columns=columns(bad))
    assert await person_of(s, "never") is None and await person_of(s, "p") == person


@pytest.mark.parametrize("uuid", ["nope", "", "{" + "a" * 32 + "}", "g" * 32, "urn:uuid:" + "a" * 32, "a" * 33])
async def test_a_malformed_uuid_is_refused(subject, uuid):
    s = subject
    with pytest.raises(StorageError):
        await s.store.create(team_id=s.team, uuid=uuid, distinct_ids=["u"], columns=columns())
    assert await person_of(s, "u") is None


async def test_distinct_ids_are_varchar_400_without_nul(subject):
    s = subject
    longest = "x" * 400
    person = await create(s, longest)
    assert await ids_of(s, person) == [longest]
    for bad in ("y" * 401, "a\x00b"):
        with pytest.raises(StorageError):
            await create(s, "ok", bad)
        with pytest.raises(StorageError):
            await s.store.add_distinct_id(person, bad)
    with pytest.raises(StorageError):
        await s.store.fetch([(s.team, "a\x00b")])
    assert await person_of(s, "ok") is None and await ids_of(s, person) == [longest]
