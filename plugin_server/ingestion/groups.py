"""The groups step (REFERENCE.md section 4): `$groups` on any event becomes `$group_<index>`
properties and the event's group columns; `$groupidentify` creates or updates a group.

Per batch:
- `prefetch`: the type mappings of the teams whose events name groups, then the groups those
  events name with a known type: at most two Postgres queries.
- `process(event)`: a `$groupidentify` upserts its group at once, under the group's row lock in
  Postgres and its trio lock in the batch (so one batch's upserts of a group run one at a time
  and the batch's view is always the last one written); then `$groups` resolves (or creates) type
  indexes and attaches each group's properties as of that moment. New types are claimed under a
  per-team batch lock; other workers are arbitrated by the mapping table's unique keys.
- No `flush`: every write happens in `process`. `rows` holds one ClickHouse `groups` row per
  group the batch changed, with its final state (coalesced), plus groups a `$groupidentify`
  touched whose current version this process has not yet seen made durable (`GroupLedger`, as
  persons' `MirrorLedger`): after a crash between the Postgres commit and the ClickHouse write, a
  re-delivered batch changes nothing in Postgres but still re-emits the lost row.
  `confirm(batch)` records the rows as durable once the sink has them.

Beyond PostHog: a type beyond the fifth gives the warning `group_type_limit_reached`; a
`$groupidentify` that only lowers `created_at` is written; object and array values compare by
content (PostHog's `!=` compared them by reference, so they always counted as changed); group
keys and types Postgres cannot store (over 400 characters, NUL, lone surrogates) are ignored
rather than failing the batch.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

import trio

from plugin_server.core import jsonx, logs
from plugin_server.core.bounded import remember
from plugin_server.ingestion.event import GroupView, IngestionWarning, PipelineEvent
from plugin_server.ingestion.js import js_string, js_to_number, js_truthy
from plugin_server.ingestion.results import Ok
from plugin_server.storage.groups import GroupColumns, GroupKey, GroupRecord, GroupStoreLike
from plugin_server.storage.tables import GROUPS_TABLE, Row, ch_datetime

log = logs.get(__name__)

MAX_GROUP_TYPES_PER_TEAM = 5  # PostHog's limit; the `$group_0..4` event columns
GROUP_IDENTIFY = "$groupidentify"
LIMIT_WARNING = "group_type_limit_reached"
# varchar(400) of posthog_group.group_key and posthog_grouptypemapping.group_type.
MAX_IDENTIFIER_LENGTH = 400


# -- JavaScript comparison (String(), truthiness, Number() are in js.py) -------------------


def _same(a: Any, b: Any) -> bool:
    """Deep equality of JSON values, types included (True is not 1; 1 is 1.0)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def loosely_equal(a: Any, b: Any) -> bool:
    """JavaScript's `a == b` for JSON values, except that two objects or two arrays compare by
    content (JS compares them by reference, so parsed values are never equal)."""
    if isinstance(a, dict | list) and isinstance(b, dict | list):
        return _same(a, b)
    if a is None or b is None:
        return a is None and b is None
    a = js_string(a) if isinstance(a, dict | list) else a  # ToPrimitive
    b = js_string(b) if isinstance(b, dict | list) else b
    a = int(a) if isinstance(a, bool) else a
    b = int(b) if isinstance(b, bool) else b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    a = js_to_number(a) if isinstance(a, str) else a
    b = js_to_number(b) if isinstance(b, str) else b
    return bool(a == b)  # numbers (and None) by now: == answers a bool


# -- Pure rules ---------------------------------------------------------------------------------


def storable(text: str) -> bool:
    """Postgres can hold it in a varchar(400) key column (else the insert fails for good)."""
    if len(text) > MAX_IDENTIFIER_LENGTH or "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return True


def group_entries(properties: dict[str, Any]) -> list[tuple[str, Any]]:
    """`$groups` as (group_type, key as sent), in object order; nothing unless it is an object."""
    groups = properties.get("$groups")
    return list(groups.items()) if isinstance(groups, dict) else []


@dataclass(frozen=True, slots=True)
class IdentifyTarget:
    group_type: str
    key: str
    group_set: dict[str, Any]


def identify_target(properties: dict[str, Any]) -> IdentifyTarget | None:
    """What a `$groupidentify` names; None when its type or key is falsy (PostHog does nothing)."""
    group_type, key = properties.get("$group_type"), properties.get("$group_key")
    if not js_truthy(group_type) or not js_truthy(key):
        return None
    group_set = properties.get("$group_set")
    return IdentifyTarget(js_string(group_type), js_string(key), group_set if isinstance(group_set, dict) else {})


def updated_properties(current: dict[str, Any], group_set: dict[str, Any]) -> dict[str, Any] | None:
    """`current` with every key of `group_set` that is absent or (loosely) different overwritten;
    None when nothing changes."""
    changes = {k: v for k, v in group_set.items() if k not in current or not loosely_equal(v, current[k])}
    return {**current, **changes} if changes else None


def next_columns(
    existing: GroupRecord | None, group_set: dict[str, Any], *, timestamp: dt.datetime, now: dt.datetime
) -> GroupColumns | None:
    """A `$groupidentify`'s effect on its group: the columns to write, or None for no write."""
    if existing is None:
        return GroupColumns(dict(group_set), min(now, timestamp))
    properties = updated_properties(existing.group_properties, group_set)
    created_at = min(existing.created_at, timestamp)
    if properties is None and created_at == existing.created_at:
        return None
    return GroupColumns(existing.group_properties if properties is None else properties, created_at)


def group_row(record: GroupRecord, timestamp: int) -> Row:
    """The ClickHouse `groups` row (ReplacingMergeTree(_timestamp)); `timestamp`: unix seconds."""
    row = {
        "group_type_index": record.group_type_index, "group_key": record.group_key,
        "created_at": ch_datetime(record.created_at)[:23], "team_id": record.team_id,
        "group_properties": jsonx.dumps_str(record.group_properties), "_timestamp": timestamp, "_offset": 0,
    }  # fmt: skip
    # Keyed by group, so a group's rows stay in order on one Kafka partition.
    key = f"{record.team_id}:{record.group_type_index}:{record.group_key}"
    return Row(GROUPS_TABLE, jsonx.dumps(row), key.encode())


# -- The step -----------------------------------------------------------------------------------


class GroupLedger:
    """(team_id, type index, key) -> version this process has made durable in ClickHouse. Bounded."""

    def __init__(self, capacity: int = 200_000) -> None:
        self._capacity = capacity
        self._versions: dict[GroupKey, int] = {}

    def known(self, key: GroupKey, version: int) -> bool:
        return self._versions.get(key) == version

    def record(self, versions: dict[GroupKey, int]) -> None:
        for key, version in versions.items():
            remember(self._versions, key, version, self._capacity)


@dataclass
class GroupBatch:
    """The groups one batch works on. Events of different distinct ids run concurrently: shared
    dicts are read and written with no await in between, or under `locked`."""

    now: dt.datetime
    mappings: dict[int, dict[str, int]]  # team -> group type -> index, as known to this batch
    groups: dict[GroupKey, GroupRecord | None]  # looked up or written; None: no such group
    pending: dict[GroupKey, GroupRecord] = field(default_factory=dict)  # state to mirror to ClickHouse
    _locks: dict[Hashable, trio.Lock] = field(default_factory=dict)

    @property
    def rows(self) -> list[Row]:
        timestamp = int(self.now.timestamp())
        return [group_row(record, timestamp) for record in self.pending.values()]

    @contextlib.asynccontextmanager
    async def locked(self, key: Hashable) -> AsyncIterator[None]:
        async with self._locks.setdefault(key, trio.Lock()):
            yield


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class GroupsStep:
    def __init__(self, *, store: GroupStoreLike, ledger: GroupLedger | None = None) -> None:
        self._store = store
        self.ledger = ledger or GroupLedger()

    async def prefetch(self, events: Iterable[PipelineEvent], *, now: dt.datetime | None = None) -> GroupBatch:
        """`now`: the batch's clock (created_at of groups whose first event is in the future,
        `_timestamp` of rows)."""
        named = []
        for e in events:
            entries = group_entries(e.properties)
            target = identify_target(e.properties) if e.event == GROUP_IDENTIFY else None
            if entries or target:
                team_id, _ = e.resolved()
                named.append((team_id, entries, target))
        teams = {team_id for team_id, _, _ in named}
        mappings = await self._store.type_mappings(teams) if teams else {}
        keys: set[GroupKey] = set()
        for team_id, entries, target in named:
            known = mappings.setdefault(team_id, {})
            wanted = [(t, js_string(k)) for t, k in entries if k is not None]
            if target:
                wanted.append((target.group_type, target.key))
            keys.update((team_id, known[t], k) for t, k in wanted if t in known and storable(k))
        found = await self._store.fetch(keys) if keys else {}
        return GroupBatch(now or _utcnow(), mappings, {k: found.get(k) for k in keys})

    async def process(self, event: PipelineEvent, batch: GroupBatch) -> Ok[PipelineEvent]:
        assert event.team_id is not None and event.resolved_timestamp is not None
        warned: dict[str, IngestionWarning] = {}  # one warning per refused type and event
        if event.event == GROUP_IDENTIFY and (target := identify_target(event.properties)):
            await self._identify(event, target, batch, warned)
        entries = group_entries(event.properties)
        if not entries:
            return Ok(event.evolve(warnings=event.warnings + tuple(warned.values())) if warned else event)
        properties = dict(event.properties)
        views = []
        for group_type, raw_key in entries:
            index = await self._type_index(event, group_type, batch, warned)
            if index is None or raw_key is None:
                continue
            key = js_string(raw_key)
            properties[f"$group_{index}"] = key
            views.append(await self._view(batch, (event.team_id, index, key)))
        return Ok(
            event.evolve(properties=properties, groups=tuple(views), warnings=event.warnings + tuple(warned.values()))
        )

    def confirm(self, batch: GroupBatch) -> None:
        """The batch's rows are durable: remember them, so later batches do not re-emit them."""
        self.ledger.record({key: record.version for key, record in batch.pending.items()})

    async def _identify(
        self, event: PipelineEvent, target: IdentifyTarget, batch: GroupBatch, warned: dict[str, IngestionWarning]
    ) -> None:
        index = await self._type_index(event, target.group_type, batch, warned)
        if index is None or not storable(target.key):
            return
        team_id, timestamp = event.resolved()
        key = (team_id, index, target.key)

        def compute(existing: GroupRecord | None) -> GroupColumns | None:
            return next_columns(existing, target.group_set, timestamp=timestamp, now=batch.now)

        async with batch.locked(key):
            result = await self._store.upsert(team_id, index, target.key, compute)
            record = result.record
            assert record is not None, "a group that does not exist is always created"
            batch.groups[key] = record
            if result.written or not self.ledger.known(key, record.version):
                batch.pending[key] = record

    async def _type_index(
        self, event: PipelineEvent, group_type: str, batch: GroupBatch, warned: dict[str, IngestionWarning]
    ) -> int | None:
        team_id, _ = event.resolved()
        known = batch.mappings.get(team_id)
        if known is None:  # a team prefetch did not see (the event was not in `prefetch`)
            fresh = await self._store.type_mappings([team_id])
            known = batch.mappings.setdefault(team_id, fresh.get(team_id, {}))
        if group_type in known:
            return known[group_type]
        if not storable(group_type):
            return None
        async with batch.locked(("types", team_id)):
            index = known.get(group_type)
            if index is None:
                index = await self._create_type(team_id, group_type, known)
        if index is None and group_type not in warned:
            log.info("group type limit reached", team_id=team_id, group_type=group_type, event_uuid=event.uuid)
            warned[group_type] = IngestionWarning(LIMIT_WARNING, {"groupType": group_type, "eventUuid": event.uuid})
        return index

    async def _create_type(self, team_id: int, group_type: str, known: dict[str, int]) -> int | None:
        """PostHog's fetchGroupTypeIndex: ask for index = number of known types, then the next
        ones while another type takes them. `known` (the batch's mapping of the team) is updated."""
        index = len(known)
        while index < MAX_GROUP_TYPES_PER_TEAM:
            claimed = await self._store.add_type(team_id, group_type, index)
            if claimed is not None:
                known[group_type] = claimed
                log.info("group type created", team_id=team_id, group_type=group_type, group_type_index=claimed)
                return claimed
            # Another worker took `index` (or inserted this very type after our statement began).
            known.update((await self._store.type_mappings([team_id])).get(team_id, {}))
            if group_type in known:
                return known[group_type]
            index = max(index + 1, len(known))
        return None

    async def _view(self, batch: GroupBatch, key: GroupKey) -> GroupView:
        if key not in batch.groups and storable(key[2]):  # a type this batch created: look it up
            found = await self._store.fetch([key])
            batch.groups.setdefault(key, found.get(key))  # an upsert meanwhile is newer: keep it
        record = batch.groups.get(key)
        if record is None:
            return GroupView(key[1], key[2], {}, None)
        return GroupView(key[1], key[2], record.group_properties, record.created_at)
