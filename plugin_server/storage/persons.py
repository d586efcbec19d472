"""Persons in Postgres (posthog_person, posthog_persondistinctid): the source of truth.

A thin adapter with no business rules: the domain (plugin_server/ingestion/persons.py) decides
what the properties become; this module reads and writes rows atomically. Concurrency between
processes is handled with optimistic versions (`version` must still be what the caller read,
else `VersionConflict` and the caller re-reads and recomputes) and, for merges, row locks taken
in id order so two merges cannot deadlock. A unique violation on creation means another worker
created the person or claimed the distinct id first: `AlreadyExists`, and the caller re-reads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

from plugin_server.core.errors import PluginServerError
from plugin_server.storage.postgres import Postgres

PERSON_COLUMNS = """p.id, p.uuid::text AS uuid, p.team_id, p.created_at, p.properties,
    p.properties_last_updated_at, p.properties_last_operation, p.is_identified, COALESCE(p.version, 0) AS version"""

FETCH_BY_DISTINCT_IDS = f"""
SELECT d.team_id AS key_team_id, d.distinct_id, COALESCE(d.version, 0) AS distinct_id_version, {PERSON_COLUMNS}
FROM unnest($1::int[], $2::text[]) AS k(team_id, distinct_id)
JOIN posthog_persondistinctid d ON d.team_id = k.team_id AND d.distinct_id = k.distinct_id
JOIN posthog_person p ON p.id = d.person_id AND p.team_id = d.team_id"""

# The same, told which (person id, version)s the caller already holds: for those rows the three
# property columns come back NULL instead of crossing the wire and being decoded again.
FETCH_BY_DISTINCT_IDS_KNOWING = """
SELECT d.team_id AS key_team_id, d.distinct_id, COALESCE(d.version, 0) AS distinct_id_version,
    p.id, p.uuid::text AS uuid, p.team_id, p.created_at, p.is_identified, COALESCE(p.version, 0) AS version,
    (c.version IS NOT NULL AND c.version = COALESCE(p.version, 0)) AS known,
    CASE WHEN c.version = COALESCE(p.version, 0) THEN NULL ELSE p.properties END AS properties,
    CASE WHEN c.version = COALESCE(p.version, 0) THEN NULL ELSE p.properties_last_updated_at END AS properties_last_updated_at,
    CASE WHEN c.version = COALESCE(p.version, 0) THEN NULL ELSE p.properties_last_operation END AS properties_last_operation
FROM unnest($1::int[], $2::text[]) AS k(team_id, distinct_id)
JOIN posthog_persondistinctid d ON d.team_id = k.team_id AND d.distinct_id = k.distinct_id
JOIN posthog_person p ON p.id = d.person_id AND p.team_id = d.team_id
LEFT JOIN unnest($3::bigint[], $4::bigint[]) AS c(id, version) ON c.id = p.id"""

FETCH_DISTINCT_IDS_OF = """
SELECT distinct_id, COALESCE(version, 0) AS version FROM posthog_persondistinctid
WHERE team_id = $1 AND person_id = $2 ORDER BY id"""

INSERT_PERSON = f"""
INSERT INTO posthog_person AS p (uuid, created_at, team_id, properties, properties_last_updated_at,
    properties_last_operation, is_identified, version)
VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, 0)
ON CONFLICT (team_id, uuid) DO NOTHING
RETURNING {PERSON_COLUMNS}"""

INSERT_DISTINCT_IDS = """
INSERT INTO posthog_persondistinctid (team_id, person_id, distinct_id, version)
SELECT $1, $2, unnest($3::text[]), 0
ON CONFLICT (team_id, distinct_id) DO NOTHING
RETURNING distinct_id"""

UPDATE_IF_VERSION = f"""
UPDATE posthog_person AS p SET properties = $3, properties_last_updated_at = $4, properties_last_operation = $5,
    is_identified = $6, created_at = $7, version = COALESCE(version, 0) + 1
WHERE p.id = $1 AND COALESCE(p.version, 0) = $2
RETURNING {PERSON_COLUMNS}"""

UPDATE_MANY_IF_VERSION = f"""
UPDATE posthog_person AS p SET properties = u.properties, properties_last_updated_at = u.last_updated,
    properties_last_operation = u.last_operation, is_identified = u.is_identified, created_at = u.created_at,
    version = COALESCE(p.version, 0) + 1
FROM unnest($1::bigint[], $2::bigint[], $3::jsonb[], $4::jsonb[], $5::jsonb[], $6::bool[], $7::timestamptz[])
    AS u(id, version, properties, last_updated, last_operation, is_identified, created_at)
WHERE p.id = u.id AND COALESCE(p.version, 0) = u.version
RETURNING {PERSON_COLUMNS}"""

LOCK_PERSONS = f"SELECT {PERSON_COLUMNS} FROM posthog_person p WHERE p.id = ANY($1::bigint[]) ORDER BY p.id FOR UPDATE"

MOVE_DISTINCT_IDS = """
UPDATE posthog_persondistinctid SET person_id = $3, version = COALESCE(version, 0) + 1
WHERE team_id = $1 AND person_id = $2
RETURNING distinct_id, version"""

DELETE_PERSON = """DELETE FROM posthog_person WHERE team_id = $1 AND id = $2
RETURNING COALESCE(version, 0) AS version, is_identified, created_at"""

# The outbox of deleted persons (migrations/postgres/0003_person_tombstones.sql).
MOVE_TOMBSTONES = "UPDATE plugin_server_person_tombstones SET merged_into = $2 WHERE merged_into = $1"
INSERT_TOMBSTONE = """
INSERT INTO plugin_server_person_tombstones (team_id, uuid, person_id, merged_into, version, is_identified, created_at)
VALUES ($1, $2::uuid, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"""
# A week: far longer than any redelivery after a crash takes.
EXPIRE_TOMBSTONES = "DELETE FROM plugin_server_person_tombstones WHERE deleted_at < now() - interval '7 days'"
FETCH_TOMBSTONES = """
SELECT team_id, uuid::text AS uuid, person_id, version, is_identified, created_at
FROM plugin_server_person_tombstones WHERE merged_into = $1"""


class AlreadyExists(PluginServerError):
    """Another worker created this person, or claimed this distinct id, first. Re-read."""


class Gone(PluginServerError):
    """The person was deleted (merged into another) since it was read."""


class VersionConflict(PluginServerError):
    """The person changed since it was read (another worker wrote it). Re-read and recompute."""


@dataclass(frozen=True, slots=True)
class PersonRecord:
    id: int
    uuid: str
    team_id: int
    created_at: dt.datetime
    properties: dict[str, Any]
    properties_last_updated_at: dict[str, Any]
    properties_last_operation: dict[str, Any]
    is_identified: bool
    version: int
    known: bool = False  # the caller holds this version: the property columns were not sent


@dataclass(frozen=True, slots=True)
class PersonColumns:
    """What the domain computed for a person: written as is."""

    properties: dict[str, Any]
    properties_last_updated_at: dict[str, Any]
    properties_last_operation: dict[str, Any]
    is_identified: bool
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class MergeResult:
    into: PersonRecord
    moved: list[tuple[str, int]]  # (distinct_id, new version)
    deleted: Tombstone


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A person deleted by a merge, as its ClickHouse tombstone row needs it."""

    team_id: int
    uuid: str
    person_id: int
    version: int  # its last version
    is_identified: bool
    created_at: dt.datetime


def _record(row: Any) -> PersonRecord:
    return PersonRecord(
        id=row["id"],
        uuid=row["uuid"],
        team_id=row["team_id"],
        created_at=row["created_at"],
        properties=row["properties"] or {},
        properties_last_updated_at=row["properties_last_updated_at"] or {},
        properties_last_operation=row["properties_last_operation"] or {},
        is_identified=row["is_identified"],
        version=row["version"],
        known=bool(row.get("known")),
    )


class PersonStoreLike(Protocol):
    """What the persons step (plugin_server/ingestion/persons.py) asks of the person store.

    `PersonStore` below is the truth (Postgres); `plugin_server.testing.persons.InMemoryPersonStore`
    is its fake, and tests/contract/test_person_store_contract.py holds both to the same behaviour.
    """

    async def fetch(
        self, keys: Iterable[tuple[int, str]], *, known: dict[int, int] | None = None
    ) -> dict[tuple[int, str], tuple[PersonRecord, int]]: ...

    async def distinct_ids_of(self, person: PersonRecord) -> list[tuple[str, int]]: ...

    async def tombstones_of(self, person: PersonRecord) -> list[Tombstone]: ...

    async def create(
        self, *, team_id: int, uuid: str, distinct_ids: list[str], columns: PersonColumns
    ) -> PersonRecord: ...

    async def add_distinct_id(self, person: PersonRecord, distinct_id: str) -> None: ...

    async def update_many(self, writes: list[tuple[PersonRecord, PersonColumns]]) -> dict[int, PersonRecord]: ...

    async def update_locked(
        self, person: PersonRecord, compute: Callable[[PersonRecord], PersonColumns]
    ) -> PersonRecord: ...

    async def merge(self, *, into: PersonRecord, other: PersonRecord, columns: PersonColumns) -> MergeResult: ...


class PersonStore:
    def __init__(self, *, pg: Postgres) -> None:
        self._pg = pg

    async def fetch(
        self, keys: Iterable[tuple[int, str]], *, known: dict[int, int] | None = None
    ) -> dict[tuple[int, str], tuple[PersonRecord, int]]:
        """The person of each (team_id, distinct_id) that has one, with that distinct id's row
        version; one round trip. `known`: person id -> version the caller holds; such rows come
        back with `known=True` and empty property columns."""
        keys = list(set(keys))
        if not keys:
            return {}
        teams, ids = [k[0] for k in keys], [k[1] for k in keys]
        if known:
            rows = await self._pg.fetch(FETCH_BY_DISTINCT_IDS_KNOWING, teams, ids, list(known), list(known.values()))
        else:
            rows = await self._pg.fetch(FETCH_BY_DISTINCT_IDS, teams, ids)
        return {(r["key_team_id"], r["distinct_id"]): (_record(r), r["distinct_id_version"]) for r in rows}

    async def distinct_ids_of(self, person: PersonRecord) -> list[tuple[str, int]]:
        return [
            (r["distinct_id"], r["version"])
            for r in await self._pg.fetch(FETCH_DISTINCT_IDS_OF, person.team_id, person.id)
        ]

    async def tombstones_of(self, person: PersonRecord) -> list[Tombstone]:
        """The persons merged (directly or through others) into `person`, from the outbox."""
        rows = await self._pg.fetch(FETCH_TOMBSTONES, person.id)
        return [
            Tombstone(r["team_id"], r["uuid"], r["person_id"], r["version"], r["is_identified"], r["created_at"])
            for r in rows
        ]

    async def create(self, *, team_id: int, uuid: str, distinct_ids: list[str], columns: PersonColumns) -> PersonRecord:
        """A new person owning `distinct_ids`, in one transaction; AlreadyExists if any is taken."""

        async def create(conn: asyncpg.Connection) -> PersonRecord | None:
            row = await conn.fetchrow(
                INSERT_PERSON, uuid, columns.created_at, team_id, columns.properties,
                columns.properties_last_updated_at, columns.properties_last_operation, columns.is_identified,
            )  # fmt: skip
            if row is None:
                return None
            inserted = await conn.fetch(INSERT_DISTINCT_IDS, team_id, row["id"], distinct_ids)
            if len(inserted) != len(set(distinct_ids)):
                raise _RollbackError
            return _record(row)

        try:
            created = await self._pg.run_in_transaction(create)
        except _RollbackError:
            created = None
        if created is None:
            raise AlreadyExists(f"person {uuid} or one of its distinct ids exists in team {team_id}")
        return created

    async def add_distinct_id(self, person: PersonRecord, distinct_id: str) -> None:
        """Give `person` one more distinct id; AlreadyExists if some person has it already."""
        inserted = await self._pg.fetch(INSERT_DISTINCT_IDS, person.team_id, person.id, [distinct_id])
        if not inserted:
            raise AlreadyExists(f"distinct id {distinct_id!r} already has a person in team {person.team_id}")

    async def update_many(self, writes: list[tuple[PersonRecord, PersonColumns]]) -> dict[int, PersonRecord]:
        """Write each person's columns if it is still at the version read, all in one round
        trip. Returns the written rows by person id; a person missing from the result changed
        since it was read."""
        if not writes:
            return {}
        rows = await self._pg.fetch(
            UPDATE_MANY_IF_VERSION,
            [p.id for p, _ in writes], [p.version for p, _ in writes], [c.properties for _, c in writes],
            [c.properties_last_updated_at for _, c in writes], [c.properties_last_operation for _, c in writes],
            [c.is_identified for _, c in writes], [c.created_at for _, c in writes],
        )  # fmt: skip
        return {r["id"]: _record(r) for r in rows}

    async def update_locked(
        self, person: PersonRecord, compute: Callable[[PersonRecord], PersonColumns]
    ) -> PersonRecord:
        """Lock the person's row, let `compute` (a pure function) decide the columns from what is
        there now, and write them: for a hot person that optimistic writes keep losing.
        Gone if the person was deleted (merged into another) meanwhile."""

        async def update(conn: asyncpg.Connection) -> PersonRecord | None:
            current = await conn.fetchrow(LOCK_PERSONS, [person.id])
            if current is None:
                return None
            latest = _record(current)
            columns = compute(latest)
            row = await conn.fetchrow(
                UPDATE_IF_VERSION, latest.id, latest.version, columns.properties, columns.properties_last_updated_at,
                columns.properties_last_operation, columns.is_identified, columns.created_at,
            )  # fmt: skip
            return _record(row)

        updated = await self._pg.run_in_transaction(update)
        if updated is None:
            raise Gone(f"person {person.uuid} no longer exists (merged into another)")
        return updated

    async def merge(self, *, into: PersonRecord, other: PersonRecord, columns: PersonColumns) -> MergeResult:
        """In one transaction: `into` gets `columns`, every distinct id of `other`, and `other` is
        deleted. Both must still be at the versions read, else VersionConflict."""

        async def merge(conn: asyncpg.Connection) -> MergeResult | None:
            locked = {r["id"]: r for r in await conn.fetch(LOCK_PERSONS, [into.id, other.id])}
            if any(p.id not in locked or locked[p.id]["version"] != p.version for p in (into, other)):
                return None
            row = await conn.fetchrow(
                UPDATE_IF_VERSION, into.id, into.version, columns.properties, columns.properties_last_updated_at,
                columns.properties_last_operation, columns.is_identified, columns.created_at,
            )  # fmt: skip
            moved = await conn.fetch(MOVE_DISTINCT_IDS, into.team_id, other.id, into.id)
            gone = await conn.fetchrow(DELETE_PERSON, other.team_id, other.id)
            assert gone is not None, "locked above at the version read, so the row is there to delete"
            deleted = Tombstone(
                other.team_id, other.uuid, other.id, gone["version"], gone["is_identified"], gone["created_at"]
            )
            await conn.execute(MOVE_TOMBSTONES, other.id, into.id)
            await conn.execute(
                INSERT_TOMBSTONE, deleted.team_id, deleted.uuid, deleted.person_id, into.id, deleted.version,
                deleted.is_identified, deleted.created_at,
            )  # fmt: skip
            await conn.execute(EXPIRE_TOMBSTONES)
            return MergeResult(_record(row), [(m["distinct_id"], m["version"]) for m in moved], deleted)

        result = await self._pg.run_in_transaction(merge)
        if result is None:
            raise VersionConflict(f"person {into.uuid} or {other.uuid} changed during a merge")
        return result


class _RollbackError(Exception):
    """Raised inside a transaction function to roll it back."""
