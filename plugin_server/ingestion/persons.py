"""The persons step: every event gets its person, created, linked or merged as PostHog does
(REFERENCE.md section 3), with properties that do not depend on arrival order.

Per batch:
- `prefetch`: one Postgres round trip for the persons of every distinct id the batch names,
  telling Postgres which person versions the caches hold (plugin_server/ingestion/person_cache.py)
  so only changed persons' properties are sent.
- `process(event)`: merge events (`$identify`, `$create_alias`, `$merge_dangerously`) and first
  sightings write to Postgres at once (rare; the event needs the resulting person); property
  changes are applied in memory, so a batch's updates of one person become one write.
- `flush`: writes every changed person once, in one statement with optimistic versions; a person
  another worker wrote meanwhile is then written under its row lock, merging the two property
  states (commutative, so the order of concurrent writers does not matter).
Each event row carries the person's uuid, properties and created_at as of that event.

ClickHouse `person` / `person_distinct_id2` rows are emitted for every person and distinct id
the batch touched whose current version this process has not yet seen made durable
(`MirrorLedger`). After a crash the ledger is empty, so a re-delivered batch re-emits the rows a
crash may have lost between the Postgres commit and the ClickHouse write; duplicates collapse in
ReplacingMergeTree(version).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid as uuid_lib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any, assert_never

import trio

from plugin_server.core import jsonx, logs, metrics
from plugin_server.core.bounded import remember
from plugin_server.core.errors import PluginServerError
from plugin_server.ingestion.event import IngestionWarning, PersonView, PipelineEvent
from plugin_server.ingestion.merge_decision import (
    AlreadyLinked,
    Create,
    Ignore,
    Link,
    Merge,
    MergeDecision,
    Owner,
    Refuse,
    decide_merge,
    screen_merge,
)
from plugin_server.ingestion.person_cache import Held, SharedStates, StateCache
from plugin_server.ingestion.person_properties import (
    PropertyState,
    apply_event,
    initial,
)
from plugin_server.ingestion.person_properties import merge as merge_states
from plugin_server.ingestion.person_rules import merge_ids
from plugin_server.ingestion.results import Ok
from plugin_server.storage.persons import (
    AlreadyExists,
    Gone,
    PersonColumns,
    PersonRecord,
    PersonStoreLike,
    Tombstone,
    VersionConflict,
)
from plugin_server.storage.tables import PERSON_DISTINCT_ID_TABLE, PERSON_TABLE, Row, ch_datetime

log = logs.get(__name__)

# Our own namespace for deterministic person uuids: the first person of (team, distinct_id) gets
# the same uuid in every process, so two workers creating it at once agree on who it is.
PERSON_NAMESPACE = uuid_lib.UUID("8a6d2c1e-5f0b-4b7e-9c3a-2d4e6f8a0b1c")
# Persons whose parsed state a process keeps between batches (a few kB each).
STATE_CACHE_SIZE = 20_000
# Attempts at a write that lost a race before giving up on the batch (it is then retried whole).
WRITE_ATTEMPTS = 5
# Deleted persons get a version above any their rows had, so the tombstone wins in ClickHouse.
TOMBSTONE_VERSION_BUMP = 100
MERGE_EVENTS = ("$identify", "$create_alias", "$merge_dangerously")


def person_uuid(team_id: int, distinct_id: str) -> str:
    return str(uuid_lib.uuid5(PERSON_NAMESPACE, f"{team_id}:{distinct_id}"))


class PersonWriteConflict(PluginServerError):
    """A write kept losing races; the batch is retried from the start."""

    retryable = True


@dataclass
class _Person:
    """A batch's working copy of one person: the row as last read or written, plus changes."""

    record: PersonRecord
    state: PropertyState
    is_identified: bool
    created_at: dt.datetime
    dirty: bool = False

    def columns(self) -> PersonColumns:
        properties, last_updated, last_operation = self.state.to_columns()
        return PersonColumns(properties, last_updated, last_operation, self.is_identified, self.created_at)

    def view(self) -> PersonView:
        return PersonView(self.record.uuid, self.state.properties, self.created_at)

    def absorb(self, newer: _Person) -> None:
        """Move to a newer version of the row (another worker wrote it) without losing this
        batch's changes: property states join (commutative), identified sticks, the earliest
        created_at wins. In place, so every group of the batch holding this copy sees it."""
        if self.dirty:
            self.state = merge_states(self.state, newer.state)
            self.is_identified = self.is_identified or newer.is_identified
            self.created_at = min(self.created_at, newer.created_at)
        else:
            self.state, self.is_identified, self.created_at = newer.state, newer.is_identified, newer.created_at
        self.record = newer.record


def _working_copy(record: PersonRecord, held: Held | None = None) -> _Person:
    """A working copy of a row; the parsed state comes from `held` when the row said so."""
    entry = held.get(record.id) if held is not None and record.known else None
    if entry is not None and entry[0] == record.version:
        state = entry[1]
    else:
        state = PropertyState.from_columns(
            record.properties, record.properties_last_updated_at, record.properties_last_operation
        )
    return _Person(record, state, record.is_identified, record.created_at)


class MirrorLedger:
    """(person uuid -> version) and ((team, distinct_id) -> (person uuid, version)) this process
    has made durable in ClickHouse, so unchanged persons are not re-emitted every batch. Bounded."""

    def __init__(self, capacity: int = 200_000) -> None:
        self._capacity = capacity
        self._persons: dict[str, int] = {}
        self._distinct_ids: dict[tuple[int, str], tuple[str, int]] = {}

    def person_known(self, uuid: str, version: int) -> bool:
        return self._persons.get(uuid) == version

    def distinct_id_known(self, key: tuple[int, str], value: tuple[str, int]) -> bool:
        return self._distinct_ids.get(key) == value

    def record(self, persons: dict[str, int], distinct_ids: dict[tuple[int, str], tuple[str, int]]) -> None:
        for uuid, version in persons.items():
            remember(self._persons, uuid, version, self._capacity)
        for key, value in distinct_ids.items():
            remember(self._distinct_ids, key, value, self._capacity)


@dataclass
class PersonBatch:
    """The persons one batch works on. Creating, linking and merging take the locks of the
    distinct ids involved (`locked`); races beyond those ids are caught by Postgres (versions,
    unique keys) and resolved by re-reading."""

    by_distinct_id: dict[tuple[int, str], _Person]
    id_versions: dict[tuple[int, str], int]  # posthog_persondistinctid.version of each mapping
    _locks: dict[tuple[int, str], trio.Lock] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    touched: dict[str, _Person] = field(default_factory=dict)  # uuid -> person
    touched_ids: set[tuple[int, str]] = field(default_factory=set)
    deleted: list[Tombstone] = field(default_factory=list)
    mirrored_persons: dict[str, int] = field(default_factory=dict)
    mirrored_ids: dict[tuple[int, str], tuple[str, int]] = field(default_factory=dict)

    def bind(self, person: _Person, team_id: int, distinct_ids: Iterable[str], *, version: int | None = None) -> None:
        """`distinct_ids` belong to `person`; `version`: their row version, when it changed."""
        for distinct_id in distinct_ids:
            key = (team_id, distinct_id)
            self.by_distinct_id[key] = person
            self.touched_ids.add(key)
            if version is not None:
                self.id_versions[key] = version
        self.touched[person.record.uuid] = person

    @contextlib.asynccontextmanager
    async def locked(self, team_id: int, *distinct_ids: str) -> AsyncIterator[None]:
        """Hold the locks of these distinct ids (in sorted order, so two holders cannot deadlock):
        creations and merges of different ids run concurrently, of the same id one at a time."""
        locks = [self._locks.setdefault((team_id, d), trio.Lock()) for d in sorted(set(distinct_ids))]
        async with contextlib.AsyncExitStack() as stack:
            for lock in locks:
                await stack.enter_async_context(lock)
            yield

    def load(self, found: dict[tuple[int, str], tuple[PersonRecord, int]], held: Held | None = None) -> None:
        """Adopt rows read from Postgres, sharing one working copy per person. A copy the batch
        already has moves to a newer version in place, keeping the batch's unwritten changes."""
        copies = {p.record.uuid: p for p in self.by_distinct_id.values()} | self.touched
        for key, (record, version) in found.items():
            current = copies.get(record.uuid)
            if current is None:
                current = copies[record.uuid] = _working_copy(record, held)
            elif current.record.version < record.version:
                current.absorb(_working_copy(record, held))
            self.by_distinct_id[key] = current
            self.id_versions[key] = version


def _updates(properties: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], Any]:
    set_ = properties.get("$set")
    set_once = properties.get("$set_once")
    return (
        set_ if isinstance(set_, dict) else {},
        set_once if isinstance(set_once, dict) else {},
        properties.get("$unset") or [],
    )


class PersonsStep:
    def __init__(
        self,
        *,
        store: PersonStoreLike,
        shared: SharedStates | None = None,
        ledger: MirrorLedger | None = None,
        cache_size: int = STATE_CACHE_SIZE,
    ) -> None:
        self._store = store
        self._shared = shared
        self.ledger = ledger or MirrorLedger()
        self._known = StateCache(cache_size)

    async def prefetch(self, events: Iterable[PipelineEvent]) -> PersonBatch:
        keys: set[tuple[int, str]] = set()
        for e in events:
            team_id, _ = e.resolved()
            keys.add((team_id, e.distinct_id))
            if e.event in MERGE_EVENTS and (ids := merge_ids(e.event, e.distinct_id, e.properties)):
                keys.add((team_id, ids[0]))
        held, unknown = self._known.held_for(keys)
        metrics.PERSON_CACHE.labels("process", "hit").inc(len(keys) - len(unknown))
        metrics.PERSON_CACHE.labels("process", "miss").inc(len(unknown))
        if self._shared is not None and unknown:
            for person_id, entry in (await self._shared.lookup(unknown)).items():
                held.setdefault(person_id, entry)
        batch = PersonBatch({}, {})
        batch.load(await self._store.fetch(keys, known={p: v for p, (v, _) in held.items()}), held)
        return batch

    async def process(self, event: PipelineEvent, batch: PersonBatch) -> Ok[PipelineEvent]:
        assert event.team_id is not None and event.resolved_timestamp is not None
        warnings: list[IngestionWarning] = []
        person = None
        if event.event in MERGE_EVENTS and (ids := merge_ids(event.event, event.distinct_id, event.properties)):
            person = await self._merge_event(event, ids, batch, warnings)
        if person is None:
            person = batch.by_distinct_id.get((event.team_id, event.distinct_id))
        if person is None:
            person = await self._create(event, batch)
        else:
            self._apply(person, event)
        batch.bind(person, event.team_id, [event.distinct_id])  # (marks it touched)
        return Ok(event.evolve(person=person.view(), warnings=event.warnings + tuple(warnings)))

    @staticmethod
    def _apply(person: _Person, event: PipelineEvent) -> None:
        set_, set_once, unset = _updates(event.properties)
        if set_ or set_once or unset:
            _, timestamp = event.resolved()
            person.state, changed = apply_event(
                person.state, set=set_, set_once=set_once, unset=unset,
                timestamp=timestamp, tiebreak=event.uuid,
            )  # fmt: skip
            person.dirty |= changed

    async def _create(self, event: PipelineEvent, batch: PersonBatch) -> _Person:
        """The person of an event whose distinct id has none yet (first sighting)."""
        team_id, _ = event.resolved()
        key = (team_id, event.distinct_id)
        async with batch.locked(*key):
            for attempt in range(WRITE_ATTEMPTS):
                existing = batch.by_distinct_id.get(key)
                if existing is not None:  # another group of this batch, or another worker, made it
                    self._apply(existing, event)
                    return existing
                try:
                    return await self._try_create(event, [event.distinct_id], batch, identified=False, attempt=attempt)
                except AlreadyExists:
                    batch.load(await self._store.fetch([key]))
        raise PersonWriteConflict(f"could not create a person for {event.distinct_id!r} in team {team_id}")

    async def _try_create(
        self, event: PipelineEvent, distinct_ids: list[str], batch: PersonBatch, *, identified: bool, attempt: int
    ) -> _Person:
        """One attempt at a new person owning `distinct_ids`; AlreadyExists if one is taken."""
        team_id, timestamp = event.resolved()
        set_, set_once, unset = _updates(event.properties)
        state = initial(set=set_, set_once=set_once, unset=unset, timestamp=timestamp, tiebreak=event.uuid)
        properties, last_updated, last_operation = state.to_columns()
        columns = PersonColumns(properties, last_updated, last_operation, identified, timestamp)
        # The deterministic uuid first; if it is taken (its distinct id now belongs to another
        # person after a merge), a random one.
        uuid = person_uuid(team_id, distinct_ids[0]) if attempt == 0 else str(uuid_lib.uuid4())
        record = await self._store.create(team_id=team_id, uuid=uuid, distinct_ids=distinct_ids, columns=columns)
        person = _Person(record, state, identified, record.created_at)
        batch.bind(person, team_id, distinct_ids, version=0)
        return person

    async def _merge_event(
        self, event: PipelineEvent, ids: tuple[str, str], batch: PersonBatch, warnings: list[IngestionWarning]
    ) -> _Person | None:
        """Carry out what `decide_merge` says, deciding again from a fresh read whenever a write
        loses a race. None: the event is an ordinary event of its own distinct id."""
        other_id, into_id = ids
        screened = screen_merge(other_id, into_id, event_uuid=event.uuid)
        if screened is not None:  # decided by the ids alone: no lock taken, no person read
            if isinstance(screened, Refuse):
                warnings.append(screened.warning)
            return None
        team_id, _ = event.resolved()
        for attempt in range(WRITE_ATTEMPTS):
            async with batch.locked(team_id, other_id, into_id):
                persons = {d: batch.by_distinct_id.get((team_id, d)) for d in ids}
                owners = {d: None if p is None else Owner(p.record.uuid, p.is_identified) for d, p in persons.items()}
                decision = decide_merge(
                    event.event, other_id, into_id, other=owners[other_id], into=owners[into_id], event_uuid=event.uuid
                )
                try:
                    person = await self._carry_out(decision, event, into_id, persons, batch, attempt=attempt)
                except (AlreadyExists, VersionConflict):
                    await self._refresh(batch, team_id, [other_id, into_id])
                    continue
            if isinstance(decision, Refuse):
                warnings.append(decision.warning)
            if person is None:
                return None
            if not isinstance(decision, Create):  # a created person already has the event's properties
                self._apply(person, event)
            if not person.is_identified:
                person.is_identified = True
                person.dirty = True
            return person
        raise PersonWriteConflict(f"could not merge {other_id!r} into {into_id!r} in team {team_id}")

    async def _carry_out(
        self,
        decision: MergeDecision,
        event: PipelineEvent,
        into_id: str,
        persons: dict[str, _Person | None],
        batch: PersonBatch,
        *,
        attempt: int,
    ) -> _Person | None:
        """One attempt at `decision`, under the locks of both ids: the person the event goes to,
        or None for nobody. AlreadyExists or VersionConflict: a write lost a race."""
        match decision:
            case Ignore():
                return None
            case Refuse(to_into=to_into):
                return persons[into_id] if to_into else None
            case Create(distinct_ids=distinct_ids):
                return await self._try_create(event, list(distinct_ids), batch, identified=True, attempt=attempt)
            case Link(distinct_id=distinct_id, to=to):
                owner = persons[to]
                assert owner is not None, "Link names an id that has a person"
                await self._store.add_distinct_id(owner.record, distinct_id)
                batch.bind(owner, event.resolved()[0], [distinct_id], version=0)
                return owner
            case AlreadyLinked():
                into = persons[into_id]
                assert into is not None, "AlreadyLinked: both ids have a person"
                await self._resync_ids(into, batch)
                return into
            case Merge(other=merged_id, into=kept_id):
                other, into = persons[merged_id], persons[kept_id]
                assert other is not None and into is not None, "Merge: both ids have a person"
                return await self._merge_persons(into, other, batch)
            case _:
                assert_never(decision)

    async def _merge_persons(self, into: _Person, other: _Person, batch: PersonBatch) -> _Person:
        into_before, other_before = into.state, other.state
        state = merge_states(into_before, other_before)
        properties, last_updated, last_operation = state.to_columns()
        columns = PersonColumns(properties, last_updated, last_operation, True, min(into.created_at, other.created_at))
        result = await self._store.merge(into=into.record, other=other.record, columns=columns)
        # Other groups of the batch may have applied events to either person while the merge was
        # in flight (they take no lock for an ordinary event): keep those changes, to be written
        # at flush. (Found by the two-process e2e test.)
        late = into.state is not into_before or other.state is not other_before
        if late:
            state = merge_states(state, merge_states(into.state, other.state))
        into.record, into.state, into.is_identified, into.created_at = result.into, state, True, result.into.created_at
        into.dirty = late
        for key, person in list(batch.by_distinct_id.items()):
            if person is other:  # ids of `other` the batch knows but the move did not report
                batch.by_distinct_id[key] = into
        for distinct_id, version in result.moved:
            batch.bind(into, into.record.team_id, [distinct_id], version=version)
        batch.touched.pop(other.record.uuid, None)
        batch.touched[into.record.uuid] = into
        batch.deleted.append(result.deleted)
        return into

    async def _resync_ids(self, person: _Person, batch: PersonBatch) -> None:
        """A merge event whose ids already share a person: the link was made by another process,
        or by an earlier attempt at this batch whose ClickHouse rows were lost (a failed flush,
        a crash). Unless this process has made this version of the person durable in ClickHouse,
        re-emit every distinct id of the person and the tombstones of the persons merged into it,
        so the mirror cannot miss a move or a deletion."""
        if self.ledger.person_known(person.record.uuid, person.record.version):
            return
        for distinct_id, version in await self._store.distinct_ids_of(person.record):
            batch.bind(person, person.record.team_id, [distinct_id], version=version)
        batch.deleted.extend(await self._store.tombstones_of(person.record))

    async def _refresh(self, batch: PersonBatch, team_id: int, distinct_ids: list[str]) -> None:
        found = await self._store.fetch([(team_id, d) for d in distinct_ids])
        for d in distinct_ids:
            if (team_id, d) not in found:
                batch.by_distinct_id.pop((team_id, d), None)
        batch.load(found)

    async def flush(self, batch: PersonBatch, *, now: dt.datetime) -> None:
        """Write every changed person once; then add the ClickHouse rows the batch owes."""
        dirty = [p for p in batch.touched.values() if p.dirty]
        written = await self._store.update_many([(p.record, p.columns()) for p in dirty])
        for person in dirty:
            if person.record.id in written:
                person.record, person.dirty = written[person.record.id], False
            else:
                await self._write_locked(person)
        ids_of: dict[str, list[tuple[int, str]]] = {}
        for key, person in batch.by_distinct_id.items():
            ids_of.setdefault(person.record.uuid, []).append(key)
        for uuid, person in batch.touched.items():  # Postgres has these versions now
            self._known.put(person.record.id, person.record.version, person.state, ids_of.get(uuid, ()))
        if self._shared is not None:
            await self._shared.store(
                (p.record.id, p.record.version, p.state, ids_of.get(uuid, [])) for uuid, p in batch.touched.items()
            )
            await self._shared.forget([t.person_id for t in batch.deleted])
        self._mirror(batch, now)

    async def _write_locked(self, person: _Person) -> None:
        """Another worker wrote the person since we read it (the optimistic batch write said so):
        under its row lock, merge their state with ours (commutative, so neither write is lost)."""

        def combine(latest: PersonRecord) -> PersonColumns:
            person.absorb(_working_copy(latest))
            return person.columns()

        try:
            person.record = await self._store.update_locked(person.record, combine)
        except Gone:
            raise PersonWriteConflict(f"person {person.record.uuid} was merged away meanwhile") from None
        person.dirty = False

    def _mirror(self, batch: PersonBatch, now: dt.datetime) -> None:
        timestamp = int(now.timestamp())
        for person in batch.touched.values():
            record = person.record
            if self.ledger.person_known(record.uuid, record.version):
                continue
            batch.rows.append(
                _person_row(record.team_id, record.uuid, person.state.properties, person.is_identified, person.created_at,
                            0, record.version, timestamp)
            )  # fmt: skip
            batch.mirrored_persons[record.uuid] = record.version
        for t in batch.deleted:
            batch.rows.append(
                _person_row(
                    t.team_id,
                    t.uuid,
                    {},
                    t.is_identified,
                    t.created_at,
                    1,
                    t.version + TOMBSTONE_VERSION_BUMP,
                    timestamp,
                )
            )
        for key in batch.touched_ids:
            owner = batch.by_distinct_id.get(key)
            if owner is None:
                continue
            value = (owner.record.uuid, batch.id_versions.get(key, 0))
            if self.ledger.distinct_id_known(key, value):
                continue
            batch.rows.append(_distinct_id_row(key, *value, timestamp))
            batch.mirrored_ids[key] = value

    def confirm(self, batch: PersonBatch) -> None:
        """The batch's rows are durable: remember them, so later batches do not re-emit them."""
        self.ledger.record(batch.mirrored_persons, batch.mirrored_ids)


def _person_row(team_id: int, uuid: str, properties: dict[str, Any], is_identified: bool, created_at: dt.datetime,
                is_deleted: int, version: int, timestamp: int) -> Row:  # fmt: skip
    row = {
        "id": uuid, "created_at": ch_datetime(created_at)[:23], "team_id": team_id,
        "properties": jsonx.dumps_str(properties), "is_identified": int(is_identified), "is_deleted": is_deleted,
        "version": version, "_timestamp": timestamp, "_offset": 0,
    }  # fmt: skip
    return Row(PERSON_TABLE, jsonx.dumps(row), uuid.encode())


def _distinct_id_row(key: tuple[int, str], person_uuid_: str, version: int, timestamp: int) -> Row:
    # `version` is posthog_persondistinctid.version: a move to another person increments it, so
    # the newest mapping wins in ClickHouse's ReplacingMergeTree(version).
    row = {
        "team_id": key[0], "distinct_id": key[1], "person_id": person_uuid_, "is_deleted": 0,
        "version": version, "_timestamp": timestamp, "_offset": 0, "_partition": 0,
    }  # fmt: skip
    return Row(PERSON_DISTINCT_ID_TABLE, jsonx.dumps(row), key[1].encode())
