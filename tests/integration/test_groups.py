"""Groups against real Postgres: type indexes (REFERENCE.md 4.1), `$groups` (4.2),
`$groupidentify` (4.3), and workers racing on one team."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid

import pytest
import trio

from plugin_server.ingestion.event import GroupView, PipelineEvent, Source
from plugin_server.ingestion.groups import GroupsStep
from plugin_server.storage.groups import GroupColumns, GroupStore
from plugin_server.storage.postgres import open_postgres
from plugin_server.storage.teams import Team, TeamStore

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
NOW = T0 + dt.timedelta(days=1)
_OFFSETS = itertools.count(1)


class World:
    """A groups step on real Postgres for one fresh team; each `run` is one batch."""

    def __init__(self, pg, team: Team) -> None:
        self.team = team
        self.store = GroupStore(pg=pg)
        self.step = GroupsStep(store=self.store)

    def event(
        self, name: str = "$pageview", *, at: dt.datetime = T0, distinct_id: str = "user", **properties
    ) -> PipelineEvent:
        return PipelineEvent(
            source=Source("events", 0, next(_OFFSETS), 1_700_000_000_000), raw=b"{}", uuid=str(uuid.uuid4()),
            distinct_id=distinct_id, event=name, properties=properties, now=NOW.isoformat(),
            token=self.team.api_token, team_id=self.team.id, team=self.team, resolved_timestamp=at,
        )  # fmt: skip

    def identify(self, group_type: str, key, *, at: dt.datetime = T0, **group_set) -> PipelineEvent:
        return self.event(
            "$groupidentify", at=at, **{"$group_type": group_type, "$group_key": key, "$group_set": group_set}
        )

    async def run(self, *events: PipelineEvent):
        """Like the pipeline: prefetch, events of distinct ids concurrently, then confirm."""
        batch = await self.step.prefetch(events, now=NOW)
        results: dict[str, PipelineEvent] = {}

        async def one(e: PipelineEvent) -> None:
            results[e.uuid] = (await self.step.process(e, batch)).value

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for e in events:
                    nursery.start_soon(one, e)
        self.step.confirm(batch)
        return [results[e.uuid] for e in events], [json.loads(row.line) for row in batch.rows]

    async def types(self) -> dict[str, int]:
        return (await self.store.type_mappings([self.team.id])).get(self.team.id, {})

    async def group(self, index: int, key: str):
        return (await self.store.fetch([(self.team.id, index, key)])).get((self.team.id, index, key))


@pytest.fixture
async def world(aio, services):
    async with open_postgres(services.database_url, max_size=8) as pg:
        yield World(pg, await TeamStore(pg=pg).create("groups"))


async def test_types_get_indexes_in_order_and_a_sixth_is_ignored_with_a_warning(world):
    (first,), _ = await world.run(world.event(**{"$groups": {"company": "a"}}))
    (second,), _ = await world.run(world.event(**{"$groups": {"project": "p"}}))
    assert await world.types() == {"company": 0, "project": 1}
    assert first.properties["$group_0"] == "a" and second.properties["$group_1"] == "p"
    assert "$group_0" not in second.properties

    await world.run(world.event(**{"$groups": {"t2": "x", "t3": "x", "t4": "x"}}))
    sixth = world.event(**{"$groups": {"company": "a", "sixth": "s"}})
    (out,), _ = await world.run(sixth)
    assert len(await world.types()) == 5 and "sixth" not in await world.types()
    assert {k: v for k, v in out.properties.items() if k.startswith("$group_")} == {"$group_0": "a"}
    assert [(w.type, w.details) for w in out.warnings] == [
        ("group_type_limit_reached", {"groupType": "sixth", "eventUuid": sixth.uuid})
    ]


async def test_groups_example_from_the_reference(world):
    await world.run(world.event(**{"$groups": {"organization": "x"}}), world.event(**{"$groups": {"instance": "y"}}))
    types = await world.types()
    assert sorted(types.values()) == [0, 1]
    (out,), _ = await world.run(world.event(**{"$groups": {"organization": "org-1", "instance": "i-1"}}))
    assert out.properties[f"$group_{types['organization']}"] == "org-1"
    assert out.properties[f"$group_{types['instance']}"] == "i-1"
    assert {(g.index, g.key) for g in out.groups} == {(types["organization"], "org-1"), (types["instance"], "i-1")}


async def test_the_store_claims_indexes_like_posthog(world):
    team_id = world.team.id
    assert await world.store.add_type(team_id, "company", 0) == 0
    assert await world.store.add_type(team_id, "company", 3) == 0  # the type keeps its index
    assert await world.store.add_type(team_id, "project", 0) is None  # index 0 is taken
    assert await world.store.add_type(team_id, "project", 1) == 1


async def test_groupidentify_creates_then_updates_only_on_change(world):
    later = T0 + dt.timedelta(hours=1)
    (out,), rows = await world.run(world.identify("company", 42, at=later, name="Acme", size=10))
    assert out.properties["$group_key"] == 42  # the event itself is ingested as sent
    group = await world.group(0, "42")
    assert (group.group_properties, group.created_at, group.version) == ({"name": "Acme", "size": 10}, later, 1)
    assert rows == [
        {
            "group_type_index": 0, "group_key": "42", "created_at": "2024-05-01 13:00:00.000", "team_id": world.team.id,
            "group_properties": json.dumps({"name": "Acme", "size": 10}, separators=(",", ":")),
            "_timestamp": int(NOW.timestamp()), "_offset": 0,
        }
    ]  # fmt: skip

    _, rows = await world.run(world.identify("company", "42", at=later + dt.timedelta(hours=1), name="Acme", size="10"))
    assert (await world.group(0, "42")).version == 1 and rows == []  # nothing changed (10 == "10")

    _, rows = await world.run(world.identify("company", "42", at=later, name="Acme Inc"))
    group = await world.group(0, "42")
    assert (group.group_properties, group.version) == ({"name": "Acme Inc", "size": 10}, 2)
    assert [json.loads(r["group_properties"]) for r in rows] == [{"name": "Acme Inc", "size": 10}]

    _, rows = await world.run(world.identify("company", "42", at=T0))  # an earlier event: created_at moves back
    group = await world.group(0, "42")
    assert (group.created_at, group.version) == (T0, 3)
    assert [r["created_at"] for r in rows] == ["2024-05-01 12:00:00.000"]


async def test_falsy_type_or_key_does_nothing(world):
    await world.run(world.identify("company", ""), world.identify("", "a"), world.identify("company", 0))
    assert await world.types() == {}


async def test_a_later_event_gets_the_group_properties(world):
    await world.run(world.identify("company", "acme", plan="pro"))
    (out, unknown), _ = await world.run(
        world.event(**{"$groups": {"company": "acme"}}), world.event(distinct_id="other", **{"$groups": {"company": "nope"}})
    )  # fmt: skip
    assert out.groups == (GroupView(0, "acme", {"plan": "pro"}, T0),)
    assert unknown.groups == (GroupView(0, "nope", {}, None),)


async def test_groupidentify_with_groups_sees_its_own_update(world):
    (out,), _ = await world.run(
        world.event("$groupidentify", **{"$group_type": "company", "$group_key": "a", "$group_set": {"n": 1}, "$groups": {"company": "a"}})
    )  # fmt: skip
    assert out.groups == (GroupView(0, "a", {"n": 1}, T0),)


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


async def test_teams_are_isolated(world, services):
    async with open_postgres(services.database_url, max_size=2) as pg:
        other = World(pg, await TeamStore(pg=pg).create("groups-other"))
        await world.run(world.event(**{"$groups": {"company": "x"}}))
        await world.run(world.identify("project", "p", team="one"))
        await other.run(other.identify("project", "p", team="two"))
        assert await world.types() == {"company": 0, "project": 1}
        assert await other.types() == {"project": 0}
        assert (await world.group(1, "p")).group_properties == {"team": "one"}
        assert (await other.group(0, "p")).group_properties == {"team": "two"}
        assert await other.group(1, "p") is None


async def test_concurrent_upserts_of_a_new_group_all_land(world):
    """Inserts racing on a new group: the losers re-run under the winner's row lock."""

    def add_one(existing):
        properties = dict(existing.group_properties) if existing else {}
        properties[str(len(properties))] = True
        return GroupColumns(properties, T0)

    for k in range(5):
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for _ in range(4):
                    nursery.start_soon(world.store.upsert, world.team.id, 0, f"new-{k}", add_one)
        group = await world.group(0, f"new-{k}")
        assert group.version == 4 and len(group.group_properties) == 4
