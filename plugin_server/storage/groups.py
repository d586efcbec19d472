"""Groups in Postgres (posthog_grouptypemapping, posthog_group): the source of truth.

A thin adapter with no business rules: the domain (plugin_server/ingestion/groups.py) decides
which index a new type asks for and what a group's columns become; this module reads and writes
rows atomically. Type indexes are claimed with a bare `ON CONFLICT DO NOTHING`, so the two unique
keys of the mapping table (type, index) arbitrate between workers. A group is written under its
row lock (`SELECT ... FOR UPDATE`), so concurrent upserts of one group serialize in Postgres; two
workers inserting a new group at once are told apart by `ON CONFLICT DO NOTHING` returning nothing,
and the loser re-runs the whole upsert, now finding the row to lock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

from plugin_server.core.errors import PluginServerError
from plugin_server.storage.postgres import Postgres

GroupKey = tuple[int, int, str]  # (team_id, group_type_index, group_key)

# A lost insert race means the other writer's row now exists and the next attempt locks it; more
# than a few losses in a row means something else is wrong, and the batch is retried whole.
UPSERT_ATTEMPTS = 3

SELECT_TYPE_MAPPINGS = """
SELECT team_id, group_type, group_type_index FROM posthog_grouptypemapping
WHERE team_id = ANY($1::int[]) ORDER BY team_id, group_type_index"""

# PostHog's insertGroupType: the inserted index, or the index the type already has. Nothing
# when `index` is taken by another type (or the type was inserted by a transaction this
# statement's snapshot cannot see yet: the caller re-reads).
INSERT_TYPE = """
WITH inserted AS (
    INSERT INTO posthog_grouptypemapping (team_id, group_type, group_type_index)
    VALUES ($1, $2, $3)
    ON CONFLICT DO NOTHING
    RETURNING group_type_index
)
SELECT group_type_index FROM inserted
UNION
SELECT group_type_index FROM posthog_grouptypemapping WHERE team_id = $1 AND group_type = $2"""

GROUP_COLUMNS = "id, team_id, group_type_index, group_key, group_properties, created_at, version"

FETCH_GROUPS = """
SELECT g.id, g.team_id, g.group_type_index, g.group_key, g.group_properties, g.created_at, g.version
FROM unnest($1::int[], $2::int[], $3::text[]) AS k(team_id, group_type_index, group_key)
JOIN posthog_group g
    ON g.team_id = k.team_id AND g.group_type_index = k.group_type_index AND g.group_key = k.group_key"""

LOCK_GROUP = f"""
SELECT {GROUP_COLUMNS} FROM posthog_group
WHERE team_id = $1 AND group_type_index = $2 AND group_key = $3
FOR UPDATE"""

# properties_last_updated_at / properties_last_operation: PostHog writes {} (groups have no
# per-property timestamps).
INSERT_GROUP = f"""
INSERT INTO posthog_group (team_id, group_type_index, group_key, group_properties, created_at,
    properties_last_updated_at, properties_last_operation, version)
VALUES ($1, $2, $3, $4, $5, '{{}}', '{{}}', 1)
ON CONFLICT (team_id, group_key, group_type_index) DO NOTHING
RETURNING {GROUP_COLUMNS}"""

UPDATE_GROUP = f"""
UPDATE posthog_group SET group_properties = $2, created_at = $3, properties_last_updated_at = '{{}}',
    properties_last_operation = '{{}}', version = version + 1
WHERE id = $1
RETURNING {GROUP_COLUMNS}"""


class GroupUpsertConflict(PluginServerError):
    """Inserting a new group kept losing races with other writers; the batch is retried whole."""

    retryable = True

    def __init__(self, key: GroupKey) -> None:
        self.key = key
        team_id, index, group_key = key
        super().__init__(f"group {group_key!r} (type index {index}) of team {team_id}: {UPSERT_ATTEMPTS} races lost")


@dataclass(frozen=True, slots=True)
class GroupRecord:
    id: int
    team_id: int
    group_type_index: int
    group_key: str
    group_properties: dict[str, Any]
    created_at: dt.datetime
    version: int

    @property
    def key(self) -> GroupKey:
        return (self.team_id, self.group_type_index, self.group_key)


@dataclass(frozen=True, slots=True)
class GroupColumns:
    """What the domain computed for a group: written as is."""

    group_properties: dict[str, Any]
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Upserted:
    record: GroupRecord | None  # the row as it now is; None: no row, and `compute` made none
    written: bool  # False: `compute` said nothing changes, the row was left alone


def _record(row: Any) -> GroupRecord:
    return GroupRecord(
        id=row["id"],
        team_id=row["team_id"],
        group_type_index=row["group_type_index"],
        group_key=row["group_key"],
        group_properties=row["group_properties"] or {},
        created_at=row["created_at"],
        version=row["version"],
    )


_RACE_LOST = object()


class GroupStoreLike(Protocol):
    """What the groups step (plugin_server/ingestion/groups.py) asks of the group store.

    `GroupStore` below is the truth (Postgres); `plugin_server.testing.groups.InMemoryGroupStore`
    is its fake, and tests/contract/test_group_store_contract.py holds both to the same behaviour.
    """

    async def type_mappings(self, team_ids: Iterable[int]) -> dict[int, dict[str, int]]: ...

    async def add_type(self, team_id: int, group_type: str, index: int) -> int | None: ...

    async def fetch(self, keys: Iterable[GroupKey]) -> dict[GroupKey, GroupRecord]: ...

    async def upsert(
        self, team_id: int, index: int, key: str, compute: Callable[[GroupRecord | None], GroupColumns | None]
    ) -> Upserted: ...


class GroupStore:
    def __init__(self, *, pg: Postgres) -> None:
        self._pg = pg

    async def type_mappings(self, team_ids: Iterable[int]) -> dict[int, dict[str, int]]:
        """{team_id: {group_type: index}} for these teams, in one query; teams without types
        are absent."""
        team_ids = sorted(set(team_ids))
        if not team_ids:
            return {}
        found: dict[int, dict[str, int]] = {}
        for row in await self._pg.fetch(SELECT_TYPE_MAPPINGS, team_ids):
            found.setdefault(row["team_id"], {})[row["group_type"]] = row["group_type_index"]
        return found

    async def add_type(self, team_id: int, group_type: str, index: int) -> int | None:
        """Claim `index` for `group_type`: the type's index (this one, or the one it already
        had), or None if `index` belongs to another type."""
        claimed: int | None = await self._pg.fetchval(INSERT_TYPE, team_id, group_type, index)
        return claimed

    async def fetch(self, keys: Iterable[GroupKey]) -> dict[GroupKey, GroupRecord]:
        """The groups that exist among `keys`, in one query."""
        keys = list(set(keys))
        if not keys:
            return {}
        rows = await self._pg.fetch(FETCH_GROUPS, [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys])
        return {(r := _record(row)).key: r for row in rows}

    async def upsert(
        self, team_id: int, index: int, key: str, compute: Callable[[GroupRecord | None], GroupColumns | None]
    ) -> Upserted:
        """In one transaction: lock the group's row, let `compute` (a pure function of the row,
        None if there is none) decide its columns (None: no change), and insert or update it
        (version + 1). `compute` may run more than once (after a lost insert race)."""

        async def upsert(conn: asyncpg.Connection) -> Upserted | object:
            row = await conn.fetchrow(LOCK_GROUP, team_id, index, key)
            existing = _record(row) if row is not None else None
            columns = compute(existing)
            if columns is None:
                return Upserted(existing, written=False)
            if existing is None:
                row = await conn.fetchrow(
                    INSERT_GROUP, team_id, index, key, columns.group_properties, columns.created_at
                )
                if row is None:
                    return _RACE_LOST
            else:
                row = await conn.fetchrow(UPDATE_GROUP, existing.id, columns.group_properties, columns.created_at)
            return Upserted(_record(row), written=True)

        for _ in range(UPSERT_ATTEMPTS):
            result = await self._pg.run_in_transaction(upsert)
            if isinstance(result, Upserted):
                return result
        raise GroupUpsertConflict((team_id, index, key))
