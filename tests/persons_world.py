"""A pipeline with persons over any person store, for one team; events are fed as capture messages.

The persons step's logic runs on the in-memory store (tests/unit/test_persons.py); what needs
real Postgres (workers racing, the Redis cache beside it) runs the same world on `PersonStore`
(tests/integration/test_persons.py, test_person_cache.py). The fake can stand in because
tests/contract/test_person_store_contract.py holds it to Postgres' behaviour.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import trio

from plugin_server.ingestion.person_cache import SharedStates
from plugin_server.ingestion.persons import PersonsStep
from plugin_server.ingestion.pipeline import BatchOutput, IngestionPipeline
from plugin_server.ingestion.teams import TeamCache
from plugin_server.storage.kafka.client import Message
from plugin_server.storage.persons import PersonRecord, PersonStoreLike
from plugin_server.storage.teams import Team

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


class World:
    """A pipeline with persons in `store` for one team; events are fed as capture messages."""

    def __init__(self, store: PersonStoreLike, team: Team, *, shared: SharedStates | None = None) -> None:
        self.team = team
        self.store = store
        self.offset = 0

        async def by_tokens(tokens):
            return [team] if team.api_token in tokens else []

        async def by_ids(ids):
            return [team] if team.id in ids else []

        teams = TeamCache(fetch_by_tokens=by_tokens, fetch_by_ids=by_ids, ttl_seconds=60)
        self.steps = PersonsStep(store=self.store, shared=shared)
        self.pipeline = IngestionPipeline(teams=teams, tasks_per_worker=4, persons=self.steps, clock=lambda: T0)

    def message(self, event: str, distinct_id: str, *, at: dt.datetime = T0, **properties) -> Message:
        self.offset += 1
        data = {"event": event, "properties": properties, "timestamp": at.isoformat()}
        envelope = {
            "uuid": str(uuid.uuid4()), "distinct_id": distinct_id, "ip": None, "site_url": "", "token": self.team.api_token,
            "now": T0.isoformat(), "sent_at": None, "data": json.dumps(data),
        }  # fmt: skip
        return Message("events", 0, self.offset, None, json.dumps(envelope).encode(), 1_700_000_000_000)

    async def run(self, *messages: Message) -> BatchOutput:
        out = await self.pipeline.process(list(messages))
        for confirm in out.on_durable:
            confirm()
        return out

    async def person(self, distinct_id: str) -> PersonRecord | None:
        found = await self.store.fetch([(self.team.id, distinct_id)])
        return found[(self.team.id, distinct_id)][0] if found else None

    async def ids(self, distinct_id: str) -> list[str]:
        person = await self.person(distinct_id)
        assert person is not None
        return [d for d, _ in await self.store.distinct_ids_of(person)]


def rows(out: BatchOutput, table: str) -> list[dict]:
    return [json.loads(row.line) for _, row in out.rows if row.table == table]


def event_person_ids(out: BatchOutput) -> list[str]:
    return [json.loads(row.line)["person_id"] for _, row in out.rows if row.table == "events"]


class CallCounter:
    """Counts the store's round trips by method."""

    def __init__(self, store) -> None:
        self._store = store
        self.calls: dict[str, int] = {}

    def __getattr__(self, name):
        method = getattr(self._store, name)

        async def counted(*args, **kwargs):
            self.calls[name] = self.calls.get(name, 0) + 1
            return await method(*args, **kwargs)

        return counted


async def race_and_check(first: World, second: World) -> None:
    """Two pipelines (as two worker processes would) run interleaved identify/alias streams on one
    store; afterwards every id has exactly one person, and each person's rows agree with its ids."""
    streams = []
    for w in (first, second):
        stream = []
        for i in range(20):
            at = T0 + dt.timedelta(seconds=i)
            stream.append(w.message("$pageview", f"anon-{i % 5}", at=at, **{"$set": {f"k{i % 3}": i}}))
            stream.append(w.message("$identify", f"user-{i % 2}", at=at, **{"$anon_distinct_id": f"anon-{i % 5}"}))
            stream.append(w.message("$create_alias", f"user-{i % 2}", at=at, alias=f"alias-{i % 4}"))
        streams.append((w, stream))

    async def feed(w: World, stream: list[Message]) -> None:
        for start in range(0, len(stream), 7):
            await w.run(*stream[start : start + 7])

    async with trio.open_nursery() as nursery:
        for w, stream in streams:
            nursery.start_soon(feed, w, stream)

    team_id = first.team.id
    every_id = [f"anon-{i}" for i in range(5)] + ["user-0", "user-1"] + [f"alias-{i}" for i in range(4)]
    found = await first.store.fetch([(team_id, d) for d in every_id])
    assert set(found) == {(team_id, d) for d in every_id}  # every id has exactly one person
    persons = {record.uuid: record for record, _ in found.values()}
    for record in persons.values():  # each person's rows agree with its distinct ids
        ids = [d for d, _ in await first.store.distinct_ids_of(record)]
        assert all(found[(team_id, d)][0].uuid == record.uuid for d in ids)
