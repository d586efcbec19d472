"""Real server processes: Kafka in, ClickHouse out; dead letters; the Kafka sink with the writer."""

from __future__ import annotations

import datetime as dt
import json

import trio

from plugin_server.core import aio
from plugin_server.core.net import free_port
from plugin_server.ops import synth
from plugin_server.storage.kafka.admin import ensure_topics
from plugin_server.storage.kafka.client import Record
from plugin_server.storage.kafka.consumer import open_consumer
from plugin_server.storage.kafka.producer import open_producer
from tests.e2e.conftest import query, wait_until

EVENTS = 1000


def produce(hosts: str, topic: str, values: list[tuple[bytes | None, bytes]]) -> None:
    """Produce with a real aiokafka producer, as capture does."""

    async def main() -> None:
        async with aio.open_loop():
            await ensure_topics(hosts=hosts, topics=[topic], partitions=4)
            async with open_producer(hosts=hosts, client_id="e2e-capture") as producer:
                await producer.send_batch(Record(topic, value, key) for key, value in values)

    trio.run(main)


def read_topic(hosts: str, topic: str, expected: int, group: str) -> list[dict]:
    async def main() -> list[dict]:
        seen: list[dict] = []
        async with aio.open_loop():
            with trio.move_on_after(60):
                async with open_consumer(hosts=hosts, topics=[topic], group_id=group, client_id="e2e") as consumer:
                    while len(seen) < expected:
                        seen.extend(
                            json.loads(m.value) for m in await consumer.getmany(timeout_ms=200, max_records=500)
                        )
        return seen

    return trio.run(main)


def count_events(env: dict[str, str], team_id: int) -> int:
    return int(query(f"SELECT count() AS c FROM events WHERE team_id = {team_id}", env)[0]["c"])


def test_thousand_events_land_exactly_once_with_the_right_fields(server_env, start_server, team):
    messages = list(
        synth.generate(token=team["api_token"], events=EVENTS, persons=50, seed=11, now=dt.datetime.now(dt.UTC))
    )
    server = start_server(server_env)
    server.wait_ready()
    produce(server_env["KAFKA_HOSTS"], server_env["KAFKA_CONSUMPTION_TOPIC"], [(m.key, m.value) for m in messages])

    wait_until(lambda: count_events(server_env, team["id"]) >= EVENTS, 90, "1000 rows in ClickHouse")
    rows = query(
        "SELECT toString(uuid) AS uuid, event, distinct_id, team_id, properties, elements_chain, "
        "toUnixTimestamp64Milli(timestamp) AS ts_ms, toString(person_id) AS person_id "
        f"FROM events WHERE team_id = {team['id']}",
        server_env,
    )
    assert server.stop() == 0, server.log()

    assert len(rows) == EVENTS
    by_uuid = {r["uuid"]: r for r in rows}
    assert set(by_uuid) == {m.uuid for m in messages}
    now_ms = dt.datetime.now(dt.UTC).timestamp() * 1000
    for m in messages:
        row, envelope = by_uuid[m.uuid], json.loads(m.value)
        data = json.loads(envelope["data"])
        assert (row["event"], row["distinct_id"], row["team_id"]) == (m.event, envelope["distinct_id"], team["id"])
        properties = json.loads(row["properties"])
        for key, value in data["properties"].items():
            if key not in ("$set", "$set_once"):
                assert properties[key] == value, key
        assert properties["$ip"] == envelope["ip"]
        # synth spreads events over the hour before now; skew correction keeps them within minutes of it
        assert now_ms - 2 * 3600 * 1000 < int(row["ts_ms"]) < now_ms + 10 * 60 * 1000
    assert "stopping gracefully" in server.log() and "server stopped" in server.log()


def test_garbage_is_dead_lettered_and_good_events_still_arrive(server_env, start_server, team, unique):
    good = list(synth.generate(token=team["api_token"], events=100, seed=12, now=dt.datetime.now(dt.UTC)))
    garbage = list(synth.garbage(count=2 * len(synth.GARBAGE_KINDS), seed=3))
    server = start_server(server_env)
    server.wait_ready()
    mixed: list[tuple[bytes | None, bytes]] = []
    for i, m in enumerate(good):
        mixed.append((m.key, m.value))
        if i < len(garbage):
            mixed.append((None, garbage[i]))
    produce(server_env["KAFKA_HOSTS"], server_env["KAFKA_CONSUMPTION_TOPIC"], mixed)

    wait_until(lambda: count_events(server_env, team["id"]) >= len(good), 90, "the good events")
    dead = read_topic(server_env["KAFKA_HOSTS"], server_env["KAFKA_DEAD_LETTER_TOPIC"], len(garbage), f"dlq{unique}")
    landed = count_events(server_env, team["id"])
    assert server.stop() == 0, server.log()

    assert landed == len(good)
    assert len(dead) == len(garbage)
    assert sorted(d["raw_payload"] for d in dead) == sorted(g.decode("utf-8", errors="replace") for g in garbage)
    for d in dead:
        assert d["reason"] and d["error"] and d["kafka_topic"] == server_env["KAFKA_CONSUMPTION_TOPIC"]


def test_kafka_sink_with_a_separate_writer_process(server_env, start_server, team):
    messages = list(synth.generate(token=team["api_token"], events=300, seed=13, now=dt.datetime.now(dt.UTC)))
    writer_env = dict(server_env)
    ingest_env = dict(server_env, INGESTION_SINK="kafka", HTTP_PORT=str(free_port()))
    ingest_env.pop("CLICKHOUSE_URL")  # the ingestion process never opens ClickHouse with the kafka sink
    writer = start_server(writer_env, "--mode", "writer", name="writer")
    ingester = start_server(ingest_env, "--mode", "ingestion", name="ingestion")
    writer.wait_ready()
    ingester.wait_ready()
    produce(server_env["KAFKA_HOSTS"], server_env["KAFKA_CONSUMPTION_TOPIC"], [(m.key, m.value) for m in messages])

    wait_until(lambda: count_events(writer_env, team["id"]) >= len(messages), 90, "rows through the writer")
    uuids = {
        r["uuid"] for r in query(f"SELECT toString(uuid) AS uuid FROM events WHERE team_id = {team['id']}", writer_env)
    }
    assert ingester.stop() == 0, ingester.log()
    assert writer.stop() == 0, writer.log()
    assert uuids == {m.uuid for m in messages}


def test_worker_processes_share_the_topic_and_a_killed_one_is_replaced(server_env, start_server, team):
    import os
    import signal

    import psutil

    first = list(synth.generate(token=team["api_token"], events=600, seed=21, now=dt.datetime.now(dt.UTC)))
    second = list(synth.generate(token=team["api_token"], events=400, seed=22, now=dt.datetime.now(dt.UTC)))
    server = start_server(dict(server_env, WORKER_CONCURRENCY="2"))
    server.wait_ready()
    children = [c for c in psutil.Process(server.proc.pid).children() if "plugin_server" in " ".join(c.cmdline())]
    assert len(children) == 2
    produce(server_env["KAFKA_HOSTS"], server_env["KAFKA_CONSUMPTION_TOPIC"], [(m.key, m.value) for m in first])
    wait_until(lambda: count_events(server_env, team["id"]) >= len(first), 90, "the first events")

    os.kill(children[0].pid, signal.SIGKILL)  # a crash: the pool must start a replacement
    wait_until(
        lambda: len([c for c in psutil.Process(server.proc.pid).children() if c.pid != children[0].pid
                     and "plugin_server" in " ".join(c.cmdline())]) == 2,
        60, "a replacement worker",
    )  # fmt: skip
    produce(server_env["KAFKA_HOSTS"], server_env["KAFKA_CONSUMPTION_TOPIC"], [(m.key, m.value) for m in second])
    wait_until(lambda: count_events(server_env, team["id"]) >= len(first) + len(second), 120, "every event")
    uuids = query(f"SELECT toString(uuid) AS uuid FROM events FINAL WHERE team_id = {team['id']}", server_env)
    all_children = psutil.Process(server.proc.pid).children()
    assert server.stop() == 0, server.log()

    assert {r["uuid"] for r in uuids} == {m.uuid for m in first + second}
    assert "ingestion worker exited; restarting" in server.log()
    assert not [c for c in all_children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


def test_synth_persons_are_consistent_between_postgres_and_clickhouse(server_env, start_server, team):
    """One query per question a reviewer would ask of persons after a synth run."""
    messages = list(
        synth.generate(token=team["api_token"], events=1500, persons=60, seed=31, now=dt.datetime.now(dt.UTC))
    )
    server = start_server(server_env)
    server.wait_ready()
    produce(server_env["KAFKA_HOSTS"], server_env["KAFKA_CONSUMPTION_TOPIC"], [(m.key, m.value) for m in messages])
    wait_until(lambda: count_events(server_env, team["id"]) >= len(messages), 90, "every event")

    expected_ids = set()
    for m in messages:
        envelope = json.loads(m.value)
        properties = json.loads(envelope["data"]).get("properties", {})
        expected_ids.add(envelope["distinct_id"])
        for linked in (properties.get("$anon_distinct_id"), properties.get("alias")):
            if linked and envelope["distinct_id"] != linked and m.event in ("$identify", "$create_alias"):
                expected_ids.add(str(linked))

    tid = team["id"]
    mapping = query(
        f"SELECT distinct_id, toString(person_id) AS person_id FROM person_distinct_id2 FINAL WHERE team_id = {tid}",
        server_env,
    )
    persons = query(f"SELECT toString(id) AS id, is_deleted FROM person FINAL WHERE team_id = {tid}", server_env)
    group_rows = query(
        f"SELECT group_key, group_properties FROM groups FINAL WHERE team_id = {tid} AND group_type_index = 0",
        server_env,
    )
    grouped_events = query(
        f"SELECT count() AS c, countIf(`$group_0` != '' AND group0_properties != '') AS g "
        f"FROM events WHERE team_id = {tid} AND JSONHas(properties, '$groups')",
        server_env,
    )
    events_without_person = query(
        f"SELECT count() AS c FROM events WHERE team_id = {tid} AND person_id = toUUID('00000000-0000-0000-0000-000000000000')",
        server_env,
    )
    assert server.stop() == 0, server.log()

    assert {r["distinct_id"] for r in mapping} == expected_ids  # every id, exactly once (FINAL)
    live = {p["id"] for p in persons if not int(p["is_deleted"])}
    assert {r["person_id"] for r in mapping} == live  # every mapping points at a live person, and back
    assert int(events_without_person[0]["c"]) == 0
    assert len(live) <= 60  # at most one person per synthetic person
    identified_companies = {
        str(json.loads(json.loads(m.value)["data"])["properties"]["$group_key"])
        for m in messages
        if m.event == "$groupidentify"
    }
    assert {r["group_key"] for r in group_rows} == identified_companies
    assert int(grouped_events[0]["c"]) > 0 and grouped_events[0]["g"] == grouped_events[0]["c"]
