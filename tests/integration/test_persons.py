"""Persons against real Postgres: what needs the real database, two workers racing on the same ids.

The persons step's logic (creation, $set rules, PostHog's merge examples, races made
deterministic) runs on the in-memory store in tests/unit/test_persons.py; the store itself is held
to Postgres' behaviour by tests/contract/test_person_store_contract.py.
"""

from __future__ import annotations

import datetime as dt

import pytest
import trio

from plugin_server.ingestion.person_cache import SharedStates
from plugin_server.storage.persons import PersonStore
from plugin_server.storage.postgres import Postgres, open_postgres
from plugin_server.storage.teams import Team, TeamStore
from tests import persons_world
from tests.persons_world import T0

__all__ = ["T0", "World"]  # tests/integration/test_person_cache.py runs its worlds on Postgres too


class World(persons_world.World):
    """A pipeline with real Postgres persons for one team; events are fed as capture messages."""

    def __init__(self, pg: Postgres, team: Team, *, shared: SharedStates | None = None) -> None:
        super().__init__(PersonStore(pg=pg), team, shared=shared)


@pytest.fixture
async def world(aio, services):
    async with open_postgres(services.database_url, max_size=8) as pg:
        team = await TeamStore(pg=pg).create("persons")
        with trio.fail_after(60):
            yield World(pg, team)


async def test_two_workers_racing_on_the_same_ids_never_make_two_persons(world, services):
    """Two pipelines (as two worker processes would) run interleaved identify/alias streams."""
    async with open_postgres(services.database_url, max_size=8) as pg2:
        second = World(pg2, world.team)
        streams = []
        for w in (world, second):
            stream = []
            for i in range(20):
                at = T0 + dt.timedelta(seconds=i)
                stream.append(w.message("$pageview", f"anon-{i % 5}", at=at, **{"$set": {f"k{i % 3}": i}}))
                stream.append(w.message("$identify", f"user-{i % 2}", at=at, **{"$anon_distinct_id": f"anon-{i % 5}"}))
                stream.append(w.message("$create_alias", f"user-{i % 2}", at=at, alias=f"alias-{i % 4}"))
            streams.append((w, stream))

        async def feed(w, stream):
            for start in range(0, len(stream), 7):
                await w.run(*stream[start : start + 7])

        async with trio.open_nursery() as nursery:
            for w, stream in streams:
                nursery.start_soon(feed, w, stream)

        every_id = [f"anon-{i}" for i in range(5)] + ["user-0", "user-1"] + [f"alias-{i}" for i in range(4)]
        found = await world.store.fetch([(world.team.id, d) for d in every_id])
        assert set(found) == {(world.team.id, d) for d in every_id}  # every id has exactly one person
        persons = {record.uuid: record for record, _ in found.values()}
        for record in persons.values():  # each person's rows agree with its distinct ids
            ids = [d for d, _ in await world.store.distinct_ids_of(record)]
            assert all(found[(world.team.id, d)][0].uuid == record.uuid for d in ids)
