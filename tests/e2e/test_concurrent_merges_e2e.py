"""Two worker processes on interleaved identify/alias streams: the persons invariants hold.

Every event is produced without a key, so events naming the same person land on different
partitions and are processed by both workers at once: merges of one person race between
processes. The links chosen ($identify and $create_alias from a user's id, $merge_dangerously
between users) give the same persons in any order, so the expected result is known exactly."""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid

import trio

from plugin_server.core import aio
from plugin_server.ingestion.person_properties import EMPTY, apply_event
from plugin_server.storage.postgres import open_postgres
from tests.e2e.conftest import query, wait_until
from tests.e2e.test_ingest_e2e import count_events, produce

T0 = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)
USERS = 50
ANONS_PER_USER = 4
PAGEVIEWS_PER_ANON = 3
MERGED_PAIRS = 8  # users merged dangerously into another user


class Stream:
    """Builds capture messages, keeping what the persons must end up as."""

    def __init__(self, token: str, seed: int) -> None:
        self.token = token
        self.rng = random.Random(seed)
        self.messages: list[bytes] = []
        self.links: list[tuple[str, str]] = []
        self.updates: dict[str, list[tuple[dt.datetime, str, dict, dict]]] = {}  # distinct id -> updates
        self.clock = 0

    def add(
        self, event: str, distinct_id: str, *, set_: dict | None = None, set_once: dict | None = None, **extra
    ) -> None:
        self.clock += 1
        at = T0 + dt.timedelta(seconds=self.clock)  # unique timestamps: no ties to break
        event_uuid = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        properties = {**extra}
        if set_:
            properties["$set"] = set_
        if set_once:
            properties["$set_once"] = set_once
        data = {"event": event, "distinct_id": distinct_id, "properties": properties, "timestamp": at.isoformat()}
        envelope = {
            "uuid": event_uuid, "distinct_id": distinct_id, "ip": None, "site_url": "https://example.com",
            "data": json.dumps(data), "now": (at + dt.timedelta(seconds=1)).isoformat(), "token": self.token,
        }  # fmt: skip
        self.messages.append(json.dumps(envelope).encode())
        self.updates.setdefault(distinct_id, []).append((at, event_uuid, set_ or {}, set_once or {}))

    def link(self, event: str, distinct_id: str, other: str, key: str) -> None:
        self.add(event, distinct_id, **{key: other})
        self.links.append((distinct_id, other))


def build(token: str) -> Stream:
    stream = Stream(token, seed=71)
    for u in range(USERS):
        user = f"user-{u}"
        anons = [f"anon-{u}-{a}" for a in range(ANONS_PER_USER)]
        for a, anon in enumerate(anons):
            for p in range(PAGEVIEWS_PER_ANON):
                stream.add("$pageview", anon, set_={"plan": f"p{a}{p}", "last": anon}, set_once={"first": anon})
        stream.add("$pageview", user, set_={"email": f"{user}@example.com"}, set_once={"first": user})
        for anon in anons[:-1]:
            stream.link("$identify", user, anon, "$anon_distinct_id")
        stream.link("$create_alias", user, anons[-1], "alias")
    for pair in range(MERGED_PAIRS):
        stream.link("$merge_dangerously", f"user-{2 * pair}", f"user-{2 * pair + 1}", "alias")
    stream.rng.shuffle(stream.messages)
    return stream


def components(stream: Stream) -> list[set[str]]:
    """The persons the links make: connected components of the distinct ids."""
    parent = {d: d for d in stream.updates}

    def find(d: str) -> str:
        while parent[d] != d:
            parent[d] = parent[parent[d]]
            d = parent[d]
        return d

    for a, b in stream.links:
        parent.setdefault(b, b)
        parent[find(a)] = find(b)
    groups: dict[str, set[str]] = {}
    for d in parent:
        groups.setdefault(find(d), set()).add(d)
    return list(groups.values())


def expected_properties(stream: Stream, ids: set[str]) -> dict:
    """Order does not matter (the property states commute), so fold in any order."""
    state = EMPTY
    for distinct_id in ids:
        for at, event_uuid, set_, set_once in stream.updates.get(distinct_id, []):
            state, _ = apply_event(state, set=set_, set_once=set_once, unset=[], timestamp=at, tiebreak=event_uuid)
    return state.properties


def postgres_persons(database_url: str, team_id: int) -> tuple[dict[str, str], dict[str, dict]]:
    """(distinct id -> person uuid, person uuid -> properties and is_identified), from the truth."""

    async def main():
        async with aio.open_loop(), open_postgres(database_url, max_size=1) as pg:
            mapping = await pg.fetch(
                "SELECT d.distinct_id, p.uuid::text AS p FROM posthog_persondistinctid d "
                "JOIN posthog_person p ON p.id = d.person_id WHERE d.team_id = $1", team_id,
            )  # fmt: skip
            persons = await pg.fetch(
                "SELECT uuid::text AS p, properties, is_identified FROM posthog_person WHERE team_id = $1", team_id
            )
        return {r["distinct_id"]: r["p"] for r in mapping}, {
            r["p"]: {"properties": r["properties"], "identified": r["is_identified"]} for r in persons
        }

    return trio.run(main)


def test_two_workers_on_interleaved_identify_and_alias_streams_keep_the_persons_invariants(
    server_env, start_server, team
):
    stream = build(team["api_token"])
    server = start_server(dict(server_env, WORKER_CONCURRENCY="2", INGESTION_BATCH_SIZE="100"))
    server.wait_ready()
    kafka, topic = server_env["KAFKA_HOSTS"], server_env["KAFKA_CONSUMPTION_TOPIC"]
    for start in range(0, len(stream.messages), 150):
        produce(kafka, topic, [(None, value) for value in stream.messages[start : start + 150]])
    tid = team["id"]
    wait_until(lambda: count_events(server_env, tid) >= len(stream.messages), 180, "every event")
    mapping, persons = postgres_persons(server_env["DATABASE_URL"], tid)
    ch_mapping_sql = (
        f"SELECT distinct_id, toString(person_id) AS p FROM person_distinct_id2 FINAL WHERE team_id = {tid}"
    )

    ch_persons_sql = f"SELECT toString(id) AS p, properties FROM person FINAL WHERE team_id = {tid} AND is_deleted = 0"
    pg_properties = {p: v["properties"] for p, v in persons.items()}

    def mirrored() -> bool:  # the writer takes each row topic at its own pace: persons may trail ids
        ids = {r["distinct_id"]: r["p"] for r in query(ch_mapping_sql, server_env)}
        return (
            ids == mapping
            and {r["p"]: json.loads(r["properties"]) for r in query(ch_persons_sql, server_env)} == pg_properties
        )

    wait_until(mirrored, 60, "ClickHouse's persons and distinct ids to mirror Postgres")
    ch_persons = query(ch_persons_sql, server_env)
    events = query(f"SELECT count() AS c, uniqExact(uuid) AS u FROM events WHERE team_id = {tid}", server_env)
    warnings = query(
        f"SELECT type, count() AS c FROM ingestion_warnings WHERE team_id = {tid} GROUP BY type", server_env
    )
    assert server.stop() == 0, server.log()

    consumed = [json.loads(line) for line in server.log().splitlines() if '"consumer stopped"' in line]
    assert len([c for c in consumed if c.get("consumed")]) >= 2, "both workers took part"
    assert {k: int(v) for k, v in events[0].items()} == {"c": len(stream.messages), "u": len(stream.messages)}
    assert warnings == []  # no refused merge, whatever the order

    expected = components(stream)
    # one person per (team, distinct_id), and exactly the persons the links make
    found: dict[str, set[str]] = {}
    for distinct_id, person in mapping.items():
        found.setdefault(person, set()).add(distinct_id)
    assert sorted(map(sorted, found.values())) == sorted(map(sorted, expected))
    assert set(persons) == set(found), "no person without distinct ids: merged-away persons are deleted"
    for person, ids in found.items():
        assert persons[person]["identified"]
        assert persons[person]["properties"] == expected_properties(stream, ids), sorted(ids)
    # ClickHouse mirrors Postgres (waited for above; asserted again on what was read)
    assert {r["p"]: json.loads(r["properties"]) for r in ch_persons} == pg_properties
