"""Persons against real Postgres: what needs the real database, two workers racing on the same ids.

The persons step's logic (creation, $set rules, PostHog's merge examples, races made
deterministic) runs on the in-memory store in tests/unit/test_persons.py; the store itself is held
to Postgres' behaviour by tests/contract/test_person_store_contract.py.
"""

from __future__ import annotations

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
        await persons_world.race_and_check(world, World(pg2, world.team))
