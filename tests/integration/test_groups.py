"""Groups against real Postgres: what needs the real database, workers racing on one team.

The groups step's logic (type indexes, `$groups`, `$groupidentify`) runs on the in-memory store in
tests/unit/test_groups_step.py; the store itself is held to Postgres' behaviour by
tests/contract/test_group_store_contract.py.
"""

from __future__ import annotations

import pytest
import trio

from plugin_server.storage.groups import GroupStore
from plugin_server.storage.postgres import Postgres, open_postgres
from plugin_server.storage.teams import Team, TeamStore
from tests import groups_world


class World(groups_world.World):
    """A groups step on real Postgres for one fresh team; each `run` is one batch."""

    def __init__(self, pg: Postgres, team: Team) -> None:
        super().__init__(GroupStore(pg=pg), team)


@pytest.fixture
async def world(aio, services):
    async with open_postgres(services.database_url, max_size=8) as pg:
        yield World(pg, await TeamStore(pg=pg).create("groups"))


async def test_two_workers_adding_types_to_one_team_never_share_an_index(world, services):
    async with open_postgres(services.database_url, max_size=8) as pg2:
        second = World(pg2, world.team)

        async def feed(w: World, prefix: str) -> None:
            for i in range(4):
                await w.run(
                    *(
                        w.event(
                            distinct_id=f"{prefix}{i}{j}", **{"$groups": {f"{prefix}{i}": "k", f"{prefix}{j}": "k"}}
                        )
                        for j in range(4)
                    )
                )

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(feed, world, "a")
                nursery.start_soon(feed, second, "b")
        types = await world.types()
        assert sorted(types.values()) == [0, 1, 2, 3, 4]  # five types, distinct indexes

        (a, _b), _ = await world.run(*(w.event(**{"$groups": {t: "k" for t in types}}) for w in (world, second)))
        assert {f"$group_{i}" for i in types.values()} <= a.properties.keys() and a.warnings == ()


async def test_two_workers_updating_one_group_lose_nothing(world, services):
    async with open_postgres(services.database_url, max_size=8) as pg2:
        second = World(pg2, world.team)

        async def feed(w: World, prefix: str) -> None:
            for i in range(10):
                await w.run(w.identify("company", "shared", **{f"{prefix}{i}": i}))

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(feed, world, "a")
                nursery.start_soon(feed, second, "b")
        group = await world.group(0, "shared")
        assert group.group_properties == {**{f"a{i}": i for i in range(10)}, **{f"b{i}": i for i in range(10)}}
        assert group.version == 20
