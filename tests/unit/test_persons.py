"""The persons step on the in-memory person store: creation, $set rules, PostHog's merge examples,
races made deterministic. Moved from tests/integration/test_persons.py: the logic needs no real
Postgres, because tests/contract/test_person_store_contract.py holds the fake to its behaviour.
What does need it (two workers racing for real) stays there."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
import trio

from plugin_server.ingestion.persons import person_uuid
from plugin_server.storage.tables import PERSON_DISTINCT_ID_TABLE, PERSON_TABLE
from plugin_server.storage.teams import Team
from plugin_server.testing.persons import InMemoryPersonStore
from tests.persons_world import T0, CallCounter, World, event_person_ids, race_and_check, rows


@pytest.fixture
async def world():
    with trio.fail_after(10):
        yield World(InMemoryPersonStore(), Team(1, str(uuid.uuid4()), "persons", "phc_persons", False))


async def test_first_event_creates_a_person_with_set_and_set_once(world):
    out = await world.run(
        world.message("$pageview", "anon-1", **{"$set": {"a": 1, "b": 2}, "$set_once": {"b": 9, "c": 3}})
    )
    person = await world.person("anon-1")
    assert person.properties == {"a": 1, "b": 2, "c": 3}  # $set wins over $set_once
    assert person.uuid == person_uuid(world.team.id, "anon-1") and not person.is_identified
    assert person.created_at == T0
    assert event_person_ids(out) == [person.uuid]
    (ch_person,) = rows(out, PERSON_TABLE)
    assert ch_person["id"] == person.uuid and json.loads(ch_person["properties"]) == person.properties
    assert [(r["distinct_id"], r["person_id"]) for r in rows(out, PERSON_DISTINCT_ID_TABLE)] == [
        ("anon-1", person.uuid)
    ]


async def test_a_batch_of_updates_to_one_person_is_one_write(world):
    await world.run(world.message("$pageview", "hot"))
    before = await world.person("hot")
    messages = [world.message("$set", "hot", at=T0 + dt.timedelta(seconds=i), **{"$set": {"n": i}}) for i in range(50)]
    out = await world.run(*messages)
    after = await world.person("hot")
    assert after.properties == {"n": 49}
    assert after.version == before.version + 1
    assert len(rows(out, PERSON_TABLE)) == 1
    # each event row carries the person as of that event
    props = [json.loads(json.loads(row.line)["person_properties"])["n"] for _, row in out.rows if row.table == "events"]
    assert props == list(range(50))


async def test_unset_and_unchanged_updates(world):
    await world.run(world.message("$pageview", "u", **{"$set": {"a": 1, "b": 2}}))
    version = (await world.person("u")).version
    out = await world.run(world.message("$set", "u", at=T0 + dt.timedelta(seconds=1), **{"$set": {"a": 1}}))
    assert (await world.person("u")).version == version and rows(out, PERSON_TABLE) == []
    await world.run(world.message("$set", "u", at=T0 + dt.timedelta(seconds=2), **{"$unset": ["a"]}))
    assert (await world.person("u")).properties == {"b": 2}


async def test_late_older_set_does_not_overwrite_a_newer_one(world):
    await world.run(world.message("$set", "late", at=T0 + dt.timedelta(hours=1), **{"$set": {"plan": "pro"}}))
    await world.run(world.message("$set", "late", at=T0, **{"$set": {"plan": "free"}, "$set_once": {"first": "old"}}))
    await world.run(world.message("$set", "late", at=T0 + dt.timedelta(hours=2), **{"$set_once": {"first": "new"}}))
    assert (await world.person("late")).properties == {"plan": "pro", "first": "old"}


async def test_create_alias_merges_two_persons_with_newest_values_winning(world):
    await world.run(
        world.message(
            "$pageview", "old_distinct_id", **{"$set": {"key_on_both": "old value both", "key_on_old": "old value"}}
        )
    )
    later = T0 + dt.timedelta(minutes=1)
    await world.run(
        world.message(
            "$pageview",
            "new_distinct_id",
            at=later,
            **{"$set": {"key_on_both": "new value both", "key_on_new": "new value"}},
        )
    )
    old = await world.person("old_distinct_id")
    out = await world.run(world.message("$create_alias", "new_distinct_id", at=later, alias="old_distinct_id"))
    merged = await world.person("new_distinct_id")
    assert await world.person("old_distinct_id") == merged
    assert await world.ids("new_distinct_id") == ["old_distinct_id", "new_distinct_id"]
    assert merged.properties == {"key_on_both": "new value both", "key_on_new": "new value", "key_on_old": "old value"}
    assert merged.is_identified and merged.created_at == T0
    tombstones = [r for r in rows(out, PERSON_TABLE) if r["is_deleted"]]
    assert [t["id"] for t in tombstones] == [old.uuid]
    moved = {r["distinct_id"]: r for r in rows(out, PERSON_DISTINCT_ID_TABLE)}
    assert moved["old_distinct_id"]["person_id"] == merged.uuid and moved["old_distinct_id"]["version"] == 1


@pytest.mark.parametrize("existing", ["none", "old", "new"])
async def test_create_alias_links_ids(world, existing):
    if existing != "none":
        await world.run(world.message("$pageview", existing))
    await world.run(world.message("$create_alias", "new", alias="old"))
    assert sorted(await world.ids("new")) == ["new", "old"]
    assert (await world.person("old")).is_identified


async def test_identify_keeps_growing_one_person(world):
    await world.run(world.message("$pageview", "anonymous_id"))
    await world.run(world.message("$pageview", "new_distinct_id", **{"$set": {"email": "a@b.c"}}))
    await world.run(world.message("$identify", "new_distinct_id", **{"$anon_distinct_id": "anonymous_id"}))
    await world.run(world.message("$pageview", "anonymous_id_2"))
    await world.run(world.message("$identify", "new_distinct_id", **{"$anon_distinct_id": "anonymous_id_2"}))
    person = await world.person("new_distinct_id")
    assert await world.ids("new_distinct_id") == ["anonymous_id", "new_distinct_id", "anonymous_id_2"]
    assert person.properties == {"email": "a@b.c"} and person.is_identified


@pytest.mark.parametrize("illegal", ["undefined", "[object Object]", "0", "anonymous", "'guest'"])
async def test_illegal_ids_are_never_merged(world, illegal):
    out = await world.run(world.message("$identify", "user-1", **{"$anon_distinct_id": illegal}))
    assert await world.ids("user-1") == ["user-1"]
    assert await world.person(illegal) is None
    assert out.warnings == ["cannot_merge_with_illegal_distinct_id"]
    assert len(rows(out, "events")) == 1


async def test_identify_with_its_own_id_changes_nothing(world):
    await world.run(world.message("$identify", "same", **{"$anon_distinct_id": "same"}))
    assert not (await world.person("same")).is_identified


async def test_an_identified_person_is_merged_only_dangerously(world):
    await world.run(world.message("$identify", "user-a", **{"$anon_distinct_id": "anon-a"}))
    await world.run(world.message("$identify", "user-b", **{"$anon_distinct_id": "anon-b"}))
    out = await world.run(world.message("$identify", "user-b", **{"$anon_distinct_id": "user-a"}))
    assert out.warnings == ["cannot_merge_already_identified"]
    assert (await world.person("user-a")) != (await world.person("user-b"))
    await world.run(world.message("$merge_dangerously", "user-b", alias="user-a"))
    assert sorted(await world.ids("user-b")) == ["anon-a", "anon-b", "user-a", "user-b"]


async def test_distinct_ids_are_per_team(world):
    other = World(world.store, Team(2, str(uuid.uuid4()), "other", "phc_other", False))
    await world.run(world.message("$pageview", "shared", **{"$set": {"team": "one"}}))
    await other.run(other.message("$pageview", "shared", **{"$set": {"team": "two"}}))
    assert (await world.person("shared")).properties == {"team": "one"}
    assert (await other.person("shared")).properties == {"team": "two"}


async def test_a_merge_that_lost_a_race_keeps_the_batchs_unwritten_changes(world):
    """Worker B applies a `$set` to person A in memory, then merges A; worker A writes A first,
    so B's merge conflicts and B rereads A. B's `$set` must survive the reread (found by the
    two-process e2e test: it used to be dropped with the stale working copy)."""
    await world.run(world.message("$pageview", "anon"), world.message("$pageview", "user"))
    other = World(world.store, world.team)  # another worker on the same database
    other.offset = 100
    real_merge = world.store.merge
    raced = []

    async def merge_after_the_other_worker_wrote(**kwargs):
        if not raced:
            raced.append(True)
            await other.run(
                other.message("$set", "anon", at=T0 + dt.timedelta(seconds=31), **{"$set": {"plan": "p31"}})
            )
        return await real_merge(**kwargs)

    world.store.merge = merge_after_the_other_worker_wrote
    newer = world.message("$set", "anon", at=T0 + dt.timedelta(seconds=32), **{"$set": {"plan": "p32", "b": 1}})
    alias = world.message("$create_alias", "user", at=T0 + dt.timedelta(seconds=40), alias="anon")
    await world.run(newer, alias)
    assert raced
    merged = await world.person("anon")
    assert merged == await world.person("user")
    assert merged.properties == {"plan": "p32", "b": 1}


async def test_events_applied_while_a_merge_is_in_flight_are_kept(world):
    """In one batch, a `$set` for the merged-away person runs (another group, no lock) while the
    merge's transaction is in flight: its change must reach the merged person."""
    await world.run(world.message("$pageview", "anon"), world.message("$pageview", "user"))
    real_merge = world.store.merge
    in_flight = trio.Event()
    applied = trio.Event()

    async def slow_merge(**kwargs):
        in_flight.set()
        await applied.wait()  # the $set group runs now
        return await real_merge(**kwargs)

    world.store.merge = slow_merge
    alias = world.message("$create_alias", "user", at=T0 + dt.timedelta(seconds=40), alias="anon")
    newer = world.message("$set", "anon", at=T0 + dt.timedelta(seconds=32), **{"$set": {"plan": "p32"}})
    real_process = world.steps.process

    async def process(event, batch):
        if event.distinct_id != "anon":
            return await real_process(event, batch)
        await in_flight.wait()
        result = await real_process(event, batch)
        applied.set()
        return result

    world.steps.process = process
    with trio.fail_after(10):
        await world.run(alias, newer)
    assert applied.is_set()
    merged = await world.person("anon")
    assert merged == await world.person("user")
    assert merged.properties == {"plan": "p32"}


async def test_a_redelivered_merge_re_emits_the_moves_and_the_tombstone(world):
    """The batch that merged committed to Postgres but its ClickHouse rows were lost (a crash):
    the redelivered merge event finds the ids already linked and still emits what the mirror
    needs: every distinct id of the person at its version, and the merged person's tombstone."""
    await world.run(
        world.message("$pageview", "anon"), world.message("$pageview", "anon-2"), world.message("$pageview", "user")
    )
    anon_2 = await world.person("anon-2")
    await world.run(world.message("$create_alias", "anon", at=T0 + dt.timedelta(seconds=1), alias="anon-2"))
    anon = await world.person("anon")
    merge = world.message("$merge_dangerously", "user", at=T0 + dt.timedelta(seconds=2), alias="anon")
    await world.pipeline.process([merge])  # committed in Postgres; its rows never made durable
    user = await world.person("user")
    restarted = World(world.store, world.team)  # a new process: nothing known to be in ClickHouse
    out = await restarted.run(merge)
    ids = {r["distinct_id"]: (r["person_id"], r["version"]) for r in rows(out, PERSON_DISTINCT_ID_TABLE)}
    assert ids == {"user": (user.uuid, 0), "anon": (user.uuid, 1), "anon-2": (user.uuid, 2)}
    tombstones = [r for r in rows(out, PERSON_TABLE) if r["is_deleted"]]
    # anon-2's person was merged into anon's, which was merged into user's: both stay deleted
    assert sorted(t["id"] for t in tombstones) == sorted([anon.uuid, anon_2.uuid])
    assert all(t["version"] > anon.version for t in tombstones if t["id"] == anon.uuid)


async def test_a_hot_distinct_id_costs_one_write_per_batch_and_keeps_its_order(world):
    """10% of a batch is one distinct id: its updates become one write, in offset order, and the
    batch's Postgres work stays two round trips however hot the key (nothing waits on its row)."""
    others = [f"cold-{i}" for i in range(150)]
    await world.run(*(world.message("$pageview", d) for d in ["hot", *others]))
    before = await world.person("hot")
    messages = []
    for i in range(1000):
        at = T0 + dt.timedelta(seconds=i)
        if i % 10 == 0:
            messages.append(world.message("$set", "hot", at=at, **{"$set": {"n": i}}))
        else:
            messages.append(world.message("$set", others[i % 150], at=at, **{"$set": {"v": i}}))
    counter = CallCounter(world.store)
    world.steps._store = counter
    out = await world.run(*messages)

    assert counter.calls == {"fetch": 1, "update_many": 1}
    hot = await world.person("hot")
    assert hot.version == before.version + 1 and hot.properties == {"n": 990}
    seen = [
        json.loads(json.loads(r.line)["person_properties"])["n"]
        for _, r in sorted(out.rows, key=lambda sr: sr[0].offset)
        if r.table == "events" and json.loads(r.line)["distinct_id"] == "hot"
    ]
    assert seen == list(range(0, 1000, 10))  # each event saw the hot person as of itself
    last = {others[i % 150]: i for i in range(1000) if i % 10}
    for distinct_id in list(last)[:20]:
        assert (await world.person(distinct_id)).properties == {"v": last[distinct_id]}


async def test_two_workers_racing_on_the_same_ids_never_make_two_persons(world):
    """The race of tests/integration/test_persons.py (which keeps it on real Postgres) on the fake:
    two pipelines sharing one store, interleaved at every round trip."""
    await race_and_check(world, World(world.store, world.team))
