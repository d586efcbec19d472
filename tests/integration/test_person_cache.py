"""The Redis person-state cache against real Redis and Postgres: shared between processes, never
trusted over Postgres, and harmless when flushed or unreachable."""

from __future__ import annotations

import datetime as dt
import json

import trio

from plugin_server.core import metrics
from plugin_server.ingestion.person_cache import SharedStates, encode_state
from plugin_server.ingestion.person_properties import PropertyState
from plugin_server.storage.redis import open_redis
from plugin_server.storage.teams import TeamStore
from tests.integration.test_persons import T0, World


class CountingStore:
    """Records the `known` versions each fetch tells Postgres (what the caches supplied)."""

    def __init__(self, store) -> None:
        self._store = store
        self.known: list[dict[int, int]] = []

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def fetch(self, keys, *, known=None):
        self.known.append(dict(known or {}))
        return await self._store.fetch(keys, known=known)


def counter(name: str, *labels: str) -> float:
    return getattr(metrics, name).labels(*labels)._value.get()


def later(seconds: int) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


async def properties_of_events(world: World, *messages) -> list[dict]:
    out = await world.run(*messages)
    return [json.loads(json.loads(r.line)["person_properties"]) for _, r in out.rows if r.table == "events"]


async def test_a_second_process_takes_person_states_from_redis(pg, redis):
    team = await TeamStore(pg=pg).create("cache-shared")
    first = World(pg, team, shared=SharedStates(redis=redis))
    await first.run(*(first.message("$set", f"u{i}", **{"$set": {"n": i}}) for i in range(20)))

    second = World(pg, team, shared=SharedStates(redis=redis))  # a fresh process: empty LRU
    second.offset = first.offset
    spy = second.steps._store = CountingStore(second.store)
    hits = counter("PERSON_CACHE", "shared", "hit")
    seen = await properties_of_events(second, *(second.message("$pageview", f"u{i}") for i in range(20)))
    assert sorted(seen, key=lambda p: p["n"]) == [{"n": i} for i in range(20)]
    assert len(spy.known[0]) == 20  # every person's state came from Redis, Postgres only confirmed it
    assert counter("PERSON_CACHE", "shared", "hit") - hits == 20


async def test_redis_is_never_trusted_over_postgres(pg, redis):
    """A wrong entry in Redis (at a version Postgres no longer has) is ignored."""
    team = await TeamStore(pg=pg).create("cache-stale")
    writer = World(pg, team, shared=SharedStates(redis=redis))
    await writer.run(writer.message("$set", "s", **{"$set": {"plan": "free"}}))
    person = await writer.person("s")
    # another process writes without telling Redis; Redis keeps the old version
    other = World(pg, team)
    other.offset = 100
    await other.run(other.message("$set", "s", at=later(5), **{"$set": {"plan": "pro"}}))
    # and a corrupt entry claims the *current* version of a different person id: never read
    await redis.set(f"person-state:{person.id + 10_000_000}", encode_state(1, PropertyState()))

    reader = World(pg, team, shared=SharedStates(redis=redis))
    reader.offset = 200
    assert await properties_of_events(reader, reader.message("$pageview", "s", at=later(6))) == [{"plan": "pro"}]


async def test_redis_flushed_mid_stream_changes_nothing(pg, redis):
    team = await TeamStore(pg=pg).create("cache-flush")
    world = World(pg, team, shared=SharedStates(redis=redis))
    expected = {}
    for round_ in range(6):
        if round_ == 3:
            await redis.flushdb()
        messages = [
            world.message("$set", f"f{i}", at=later(round_), **{"$set": {"round": round_, "i": i}}) for i in range(10)
        ]
        seen = await properties_of_events(world, *messages)
        assert sorted(seen, key=lambda p: p["i"]) == [{"round": round_, "i": i} for i in range(10)]
        expected = {f"f{i}": {"round": round_, "i": i} for i in range(10)}
    # a fresh process after the flush still gets the right persons
    fresh = World(pg, team, shared=SharedStates(redis=redis))
    fresh.offset = world.offset
    seen = await properties_of_events(fresh, *(fresh.message("$pageview", d, at=later(9)) for d in expected))
    assert sorted(seen, key=lambda p: p["i"]) == list(expected.values())
    for distinct_id, properties in expected.items():
        assert (await world.person(distinct_id)).properties == properties


async def test_unreachable_redis_degrades_to_postgres(pg, services):
    team = await TeamStore(pg=pg).create("cache-down")
    port = services.redis_url.rsplit(":", 1)[1].split("/")[0]
    dead_url = services.redis_url.replace(f":{port}/", ":1/")  # nothing listens on port 1
    async with open_redis(dead_url) as dead:
        world = World(pg, team, shared=SharedStates(redis=dead))
        failures = counter("PERSON_CACHE_ERRORS", "store")
        with trio.fail_after(30):
            seen = await properties_of_events(world, world.message("$set", "d", **{"$set": {"ok": True}}))
            assert seen == [{"ok": True}]
            fresh = World(pg, team, shared=SharedStates(redis=dead))
            fresh.offset = 10
            seen = await properties_of_events(fresh, fresh.message("$pageview", "d", at=later(1)))
        assert seen == [{"ok": True}]
        assert counter("PERSON_CACHE_ERRORS", "store") > failures


async def test_merged_away_persons_leave_redis(pg, redis):
    team = await TeamStore(pg=pg).create("cache-merge")
    world = World(pg, team, shared=SharedStates(redis=redis))
    await world.run(world.message("$pageview", "anon"), world.message("$pageview", "user"))
    anon = await world.person("anon")
    assert await redis.get(f"person-state:{anon.id}") is not None
    await world.run(world.message("$create_alias", "user", at=later(1), alias="anon"))
    assert await redis.get(f"person-state:{anon.id}") is None
    merged = await world.person("anon")
    assert merged.id != anon.id and await redis.get(f"person-of:{team.id}:anon") == str(merged.id).encode()
