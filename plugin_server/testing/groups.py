"""An in-memory stand-in for `plugin_server.storage.groups.GroupStore`.

It keeps the two tables the real store writes (posthog_grouptypemapping, posthog_group) and
answers as Postgres does: a type keeps the index it has, an index taken by another type is None,
indexes outside 0..4 and over-long or NUL-holding text are refused (`StorageError`), and a group is
created at version 1 and bumped by one per write. Every call is one checkpoint, as one round trip
is, and each is atomic, as each is one statement or transaction in Postgres.
tests/contract/test_group_store_contract.py runs the same cases against both.

Not modelled: the team foreign key, and lost insert races (`GroupUpsertConflict`): nothing here
runs between a read and its write.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import trio

from plugin_server.storage.groups import GroupColumns, GroupKey, GroupRecord, Upserted
from plugin_server.testing import postgres_values as pgv

if TYPE_CHECKING:
    from plugin_server.storage.groups import GroupStore, GroupStoreLike

TEXT_CHARS = 400  # group_type and group_key are varchar(400)
MAX_INDEX = 4  # the CHECK constraint group_type_index_is_less_than_or_equal_max


class InMemoryGroupStore:
    def __init__(self) -> None:
        self.types: dict[int, dict[str, int]] = {}  # team id -> {group type: index}
        self.groups: dict[GroupKey, GroupRecord] = {}
        self.calls: list[str] = []  # method names, one per round trip
        self._ids = itertools.count(1)

    async def _round_trip(self, method: str) -> None:
        self.calls.append(method)
        await trio.lowlevel.checkpoint()  # other tasks run meanwhile, as during a query

    async def type_mappings(self, team_ids: Iterable[int]) -> dict[int, dict[str, int]]:
        team_ids = sorted(set(team_ids))
        if not team_ids:
            return {}
        await self._round_trip("type_mappings")
        return {
            team_id: dict(sorted(self.types[team_id].items(), key=lambda item: item[1]))
            for team_id in team_ids
            if self.types.get(team_id)
        }

    async def add_type(self, team_id: int, group_type: str, index: int) -> int | None:
        await self._round_trip("add_type")
        pgv.text(group_type, limit=TEXT_CHARS)
        if not 0 <= index <= MAX_INDEX:  # checked before the unique keys, even for a known type
            raise pgv.refused("new row violates check constraint group_type_index_is_less_than_or_equal_max", "23514")
        known = self.types.setdefault(team_id, {})
        if group_type in known:
            return known[group_type]
        if index in known.values():
            return None
        known[group_type] = index
        return index

    async def fetch(self, keys: Iterable[GroupKey]) -> dict[GroupKey, GroupRecord]:
        keys = set(keys)
        if not keys:
            return {}
        await self._round_trip("fetch")
        for _, _, group_key in keys:
            pgv.text(group_key)
        return {key: self._read(key) for key in keys if key in self.groups}

    async def upsert(
        self, team_id: int, index: int, key: str, compute: Callable[[GroupRecord | None], GroupColumns | None]
    ) -> Upserted:
        await self._round_trip("upsert")
        group_key = (team_id, index, pgv.text(key))
        existing = self._read(group_key) if group_key in self.groups else None
        columns = compute(existing)
        if columns is None:
            return Upserted(existing, written=False)
        if columns.group_properties is None:
            raise pgv.refused('null value in column "group_properties" of relation "posthog_group"', "23502")
        properties, created_at = pgv.jsonb(columns.group_properties), pgv.timestamptz(columns.created_at)
        if existing is None:
            pgv.text(key, limit=TEXT_CHARS)
            self.groups[group_key] = GroupRecord(next(self._ids), team_id, index, key, properties, created_at, 1)
        else:
            self.groups[group_key] = GroupRecord(
                existing.id, team_id, index, key, properties, created_at, existing.version + 1
            )
        return Upserted(self._read(group_key), written=True)

    def _read(self, key: GroupKey) -> GroupRecord:
        """A copy of the row, as a fresh query would decode it."""
        row = self.groups[key]
        return GroupRecord(
            row.id, row.team_id, row.group_type_index, row.group_key, pgv.jsonb(row.group_properties) or {},
            row.created_at, row.version,
        )  # fmt: skip


if TYPE_CHECKING:  # mypy checks that the fake and the real store both satisfy the Protocol

    def _conforms(fake: InMemoryGroupStore, real: GroupStore) -> list[GroupStoreLike]:
        return [fake, real]
