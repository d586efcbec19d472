"""Fault tests with real processes: a worker killed with SIGKILL in the middle of a stream."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import time

import psutil

from plugin_server.ops import synth
from tests.e2e.conftest import query, wait_until
from tests.e2e.test_ingest_e2e import count_events, produce


def workers_of(pid: int) -> list[psutil.Process]:
    return [c for c in psutil.Process(pid).children() if "plugin_server" in " ".join(c.cmdline())]


def test_kill_9_mid_stream_loses_nothing_and_keeps_persons_consistent(server_env, start_server, team):
    messages = list(
        synth.generate(token=team["api_token"], events=3000, persons=80, seed=61, now=dt.datetime.now(dt.UTC))
    )
    server = start_server(dict(server_env, WORKER_CONCURRENCY="2", INGESTION_BATCH_SIZE="200"))
    server.wait_ready()
    kafka, topic = server_env["KAFKA_HOSTS"], server_env["KAFKA_CONSUMPTION_TOPIC"]
    killed = []
    for start in range(0, len(messages), 300):
        produce(kafka, topic, [(m.key, m.value) for m in messages[start : start + 300]])
        if start in (600, 1800):  # twice, while batches are in flight
            victim = workers_of(server.proc.pid)[0]
            os.kill(victim.pid, signal.SIGKILL)
            killed.append(victim.pid)
            time.sleep(0.2)

    wait_until(lambda: count_events(server_env, team["id"]) >= len(messages), 180, "every event")
    tid = team["id"]
    events = query(f"SELECT count() AS c, uniqExact(uuid) AS u FROM events FINAL WHERE team_id = {tid}", server_env)
    mapping = query(
        f"SELECT distinct_id, toString(person_id) AS p FROM person_distinct_id2 FINAL WHERE team_id = {tid}", server_env
    )
    persons = query(f"SELECT toString(id) AS id FROM person FINAL WHERE team_id = {tid} AND is_deleted = 0", server_env)
    assert server.stop() == 0, server.log()

    assert len(killed) == 2 and server.log().count("ingestion worker exited; restarting") >= 2
    assert {k: int(v) for k, v in events[0].items()} == {"c": len(messages), "u": len(messages)}  # exactly once
    distinct_ids = {r["distinct_id"] for r in mapping}
    assert {str(json.loads(m.value)["distinct_id"]) for m in messages} <= distinct_ids
    assert {r["p"] for r in mapping} <= {p["id"] for p in persons}  # no mapping to a deleted person


def test_workers_stop_when_their_pool_process_is_killed(server_env, start_server):
    """SIGKILL of the process that runs the worker pool leaves no orphan workers consuming."""
    server = start_server(dict(server_env, WORKER_CONCURRENCY="2"))
    server.wait_ready()
    workers = workers_of(server.proc.pid)
    assert len(workers) == 2
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait()
    _gone, alive = psutil.wait_procs(workers, timeout=30)
    assert alive == [], f"orphan workers still running: {[p.pid for p in alive]}"
    assert "parent process is gone; stopping" in server.log()
