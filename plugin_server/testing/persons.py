"""An in-memory stand-in for `plugin_server.storage.persons.PersonStore`.

It keeps the three tables the real store writes (posthog_person, posthog_persondistinctid and the
tombstone outbox) and answers as Postgres does: unique (team, uuid) and (team, distinct id) give
`AlreadyExists`, stale versions are skipped by `update_many` and refused by `merge`
(`VersionConflict`), a deleted person is `Gone` for `update_locked` and a foreign-key
`StorageError` for `add_distinct_id`, and values come back as jsonb and timestamptz give them
(plugin_server/testing/postgres_values.py). Every call is one checkpoint, as one round trip is,
and each is atomic, as each is one statement or transaction in Postgres. tests/contract/
test_person_store_contract.py runs the same cases against both.

Not modelled: the team foreign key (any team id is accepted) and lock waits (nothing blocks).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from plugin_server.storage.persons import (
    AlreadyExists,
    Gone,
    MergeResult,
    PersonColumns,
    PersonRecord,
    Tombstone,
    VersionConflict,
)
from plugin_server.testing import postgres_values as pgv

if TYPE_CHECKING:
    from plugin_server.storage.persons import PersonStore, PersonStoreLike

DISTINCT_ID_CHARS = 400  # posthog_persondistinctid.distinct_id is varchar(400)
TOMBSTONE_RETENTION = dt.timedelta(days=7)  # persons.EXPIRE_TOMBSTONES


@dataclass
class _DistinctId:
    id: int  # the row's serial id: distinct_ids_of lists in this order
    person_id: int
    version: int


@dataclass(frozen=True)
class _Tombstone:
    tombstone: Tombstone
    merged_into: int
    deleted_at: dt.datetime


class InMemoryPersonStore:
    def __init__(self) -> None:
        self.persons: dict[int, PersonRecord] = {}
        self.distinct_ids: dict[tuple[int, str], _DistinctId] = {}
        self.tombstones: dict[tuple[int, str], _Tombstone] = {}
        self.calls: list[str] = []  # method names, one per round trip
        self._person_ids = itertools.count(1)
        self._distinct_id_ids = itertools.count(1)

    async def _round_trip(self, method: str) -> None:
        self.calls.append(method)
        await trio.lowlevel.checkpoint()  # other tasks run meanwhile, as during a query

    def _read(self, person_id: int) -> PersonRecord:
        """A copy of the row, as a fresh query would decode it."""
        row = self.persons[person_id]
        return dataclasses.replace(
            row,  # the store reads a NULL or empty column as {}
            properties=pgv.jsonb(row.properties) or {},
            properties_last_updated_at=pgv.jsonb(row.properties_last_updated_at) or {},
            properties_last_operation=pgv.jsonb(row.properties_last_operation) or {},
        )

    async def fetch(
        self, keys: Iterable[tuple[int, str]], *, known: dict[int, int] | None = None
    ) -> dict[tuple[int, str], tuple[PersonRecord, int]]:
        keys = set(keys)
        if not keys:
            return {}
        await self._round_trip("fetch")
        for _, distinct_id in keys:
            pgv.text(distinct_id)
        found: dict[tuple[int, str], tuple[PersonRecord, int]] = {}
        for key in keys:
            row = self.distinct_ids.get(key)
            if row is None:
                continue
            person = self.persons[row.person_id]
            if known and known.get(person.id) == person.version:
                record = dataclasses.replace(
                    person, properties={}, properties_last_updated_at={}, properties_last_operation={}, known=True
                )
            else:
                record = self._read(person.id)
            found[key] = (record, row.version)
        return found

    async def distinct_ids_of(self, person: PersonRecord) -> list[tuple[str, int]]:
        await self._round_trip("distinct_ids_of")
        rows = [
            (row.id, distinct_id, row.version)
            for (team_id, distinct_id), row in self.distinct_ids.items()
            if team_id == person.team_id and row.person_id == person.id
        ]
        return [(distinct_id, version) for _, distinct_id, version in sorted(rows)]

    async def tombstones_of(self, person: PersonRecord) -> list[Tombstone]:
        await self._round_trip("tombstones_of")
        return [t.tombstone for t in self.tombstones.values() if t.merged_into == person.id]

    async def create(self, *, team_id: int, uuid: str, distinct_ids: list[str], columns: PersonColumns) -> PersonRecord:
        await self._round_trip("create")
        uuid = pgv.uuid(uuid)
        written = _columns(columns)
        if any(p.team_id == team_id and p.uuid == uuid for p in self.persons.values()):
            raise AlreadyExists(f"person {uuid} or one of its distinct ids exists in team {team_id}")
        wanted = list(dict.fromkeys(pgv.text(d, limit=DISTINCT_ID_CHARS) for d in distinct_ids))
        if any((team_id, d) in self.distinct_ids for d in wanted):
            raise AlreadyExists(f"person {uuid} or one of its distinct ids exists in team {team_id}")
        person = PersonRecord(
            id=next(self._person_ids), uuid=uuid, team_id=team_id, created_at=written.created_at,
            properties=written.properties, properties_last_updated_at=written.properties_last_updated_at,
            properties_last_operation=written.properties_last_operation, is_identified=written.is_identified,
            version=0,
        )  # fmt: skip
        self.persons[person.id] = person
        for distinct_id in wanted:
            self.distinct_ids[(team_id, distinct_id)] = _DistinctId(next(self._distinct_id_ids), person.id, 0)
        return self._read(person.id)

    async def add_distinct_id(self, person: PersonRecord, distinct_id: str) -> None:
        await self._round_trip("add_distinct_id")
        key = (person.team_id, pgv.text(distinct_id, limit=DISTINCT_ID_CHARS))
        if key in self.distinct_ids:
            raise AlreadyExists(f"distinct id {distinct_id!r} already has a person in team {person.team_id}")
        if person.id not in self.persons:  # merged away meanwhile: the row's foreign key refuses it
            raise pgv.foreign_key("posthog_persondistinctid", "person_id", person.id)
        self.distinct_ids[key] = _DistinctId(next(self._distinct_id_ids), person.id, 0)

    async def update_many(self, writes: list[tuple[PersonRecord, PersonColumns]]) -> dict[int, PersonRecord]:
        if not writes:
            return {}
        await self._round_trip("update_many")
        encoded = [(person, _columns(columns)) for person, columns in writes]  # one statement: all or nothing
        written: dict[int, PersonRecord] = {}
        for person, columns in encoded:
            current = self.persons.get(person.id)
            if current is None or current.version != person.version or person.id in written:
                continue
            self._write(current, columns)
            written[person.id] = self._read(person.id)
        return written

    async def update_locked(
        self, person: PersonRecord, compute: Callable[[PersonRecord], PersonColumns]
    ) -> PersonRecord:
        await self._round_trip("update_locked")
        if person.id not in self.persons:
            raise Gone(f"person {person.uuid} no longer exists (merged into another)")
        columns = _columns(compute(self._read(person.id)))
        self._write(self.persons[person.id], columns)
        return self._read(person.id)

    async def merge(self, *, into: PersonRecord, other: PersonRecord, columns: PersonColumns) -> MergeResult:
        await self._round_trip("merge")
        written = _columns(columns)
        for person in (into, other):
            current = self.persons.get(person.id)
            if current is None or current.version != person.version:
                raise VersionConflict(f"person {into.uuid} or {other.uuid} changed during a merge")
        if into.id == other.id:  # its distinct ids would still point at the row being deleted
            raise pgv.foreign_key("posthog_persondistinctid", "person_id", other.id)
        self._write(self.persons[into.id], written)
        moved = []
        for (team_id, distinct_id), row in sorted(self.distinct_ids.items(), key=lambda item: item[1].id):
            if team_id == into.team_id and row.person_id == other.id:
                row.person_id, row.version = into.id, row.version + 1
                moved.append((distinct_id, row.version))
        gone = self.persons.pop(other.id)
        deleted = Tombstone(other.team_id, other.uuid, other.id, gone.version, gone.is_identified, gone.created_at)
        now = dt.datetime.now(dt.UTC)
        for key, entry in list(self.tombstones.items()):
            if entry.merged_into == other.id:
                self.tombstones[key] = dataclasses.replace(entry, merged_into=into.id)
        self.tombstones.setdefault((deleted.team_id, deleted.uuid), _Tombstone(deleted, into.id, now))
        for key, entry in list(self.tombstones.items()):
            if entry.deleted_at < now - TOMBSTONE_RETENTION:
                del self.tombstones[key]
        return MergeResult(self._read(into.id), moved, deleted)

    def _write(self, current: PersonRecord, columns: PersonColumns) -> None:
        self.persons[current.id] = dataclasses.replace(
            current,
            properties=columns.properties,
            properties_last_updated_at=columns.properties_last_updated_at,
            properties_last_operation=columns.properties_last_operation,
            is_identified=columns.is_identified,
            created_at=columns.created_at,
            version=current.version + 1,
        )


def _columns(columns: PersonColumns) -> PersonColumns:
    """The columns as Postgres stores them (or the error it answers with)."""
    for name in ("properties", "properties_last_updated_at"):
        if getattr(columns, name) is None:
            raise pgv.refused(f'null value in column "{name}" of relation "posthog_person"', "23502")
    return PersonColumns(
        pgv.jsonb(columns.properties),
        pgv.jsonb(columns.properties_last_updated_at),
        pgv.jsonb(columns.properties_last_operation),
        columns.is_identified,
        pgv.timestamptz(columns.created_at),
    )


if TYPE_CHECKING:  # mypy checks that the fake and the real store both satisfy the Protocol

    def _conforms(fake: InMemoryPersonStore, real: PersonStore) -> list[PersonStoreLike]:
        return [fake, real]
