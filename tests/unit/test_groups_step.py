"""The groups step on the in-memory group store: type indexes (REFERENCE.md 4.1), `$groups` (4.2),
`$groupidentify` (4.3). Moved from tests/integration/test_groups.py: the logic needs no real
Postgres, because tests/contract/test_group_store_contract.py holds the fake to its behaviour.
Workers racing on one team stay there."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

from plugin_server.ingestion.event import GroupView
from plugin_server.storage.teams import Team
from plugin_server.testing.groups import InMemoryGroupStore
from tests.groups_world import NOW, T0, World


@pytest.fixture
def world() -> World:
    return World(InMemoryGroupStore(), Team(1, str(uuid.uuid4()), "groups", "phc_groups", False))


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


async def test_teams_are_isolated(world):
    other = World(world.store, Team(2, str(uuid.uuid4()), "groups-other", "phc_groups_other", False))
    await world.run(world.event(**{"$groups": {"company": "x"}}))
    await world.run(world.identify("project", "p", team="one"))
    await other.run(other.identify("project", "p", team="two"))
    assert await world.types() == {"company": 0, "project": 1}
    assert await other.types() == {"project": 0}
    assert (await world.group(1, "p")).group_properties == {"team": "one"}
    assert (await other.group(0, "p")).group_properties == {"team": "two"}
    assert await other.group(1, "p") is None
