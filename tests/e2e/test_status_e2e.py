"""`plugin-server status` as an operator meets it: lag reaching zero under a running server, the job
queue and plugin errors from Postgres, the text tables, unreachable services, bad flags."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid

import trio

from plugin_server.core import aio
from plugin_server.ops import synth
from plugin_server.storage.postgres import open_postgres
from tests.e2e.conftest import cli, wait_until
from tests.e2e.test_ingest_e2e import produce

EVENTS = 400
TIMEOUT = 10.0  # status's default
SECTIONS = ("Kafka lag", "Writer backlog", "Job queue", "Plugin errors")


def status_json(env: dict[str, str]) -> dict:
    return json.loads(cli("status", "--json", env=env, timeout=60, check=True).stdout)


def seed_postgres(database_url: str, team_id: int, task: str) -> int:
    """Two due jobs and one scheduled later for `task`; a plugin config with an error. Returns its id."""

    async def main() -> int:
        async with aio.open_loop(), open_postgres(database_url, max_size=1) as pg:
            for delay in (dt.timedelta(minutes=-5), dt.timedelta(minutes=-1), dt.timedelta(hours=1)):
                await pg.execute(
                    "INSERT INTO plugin_server_jobs (task_identifier, run_at) VALUES ($1, now() + $2)",
                    task,
                    delay,
                )
            plugin_id = await pg.fetchval("INSERT INTO posthog_plugin (name) VALUES ('status e2e') RETURNING id")
            error = {"message": "boom\n  at line 3", "time": dt.datetime.now(dt.UTC).isoformat(), "name": "Error"}
            return await pg.fetchval(
                "INSERT INTO posthog_pluginconfig (team_id, plugin_id, enabled, error) VALUES ($1, $2, false, $3)"
                " RETURNING id",
                team_id,
                plugin_id,
                error,
            )

    return trio.run(main)


def test_status_shows_lag_reaching_zero_jobs_and_plugin_errors(server_env, start_server, team):
    env = {**server_env, "KAFKA_ASYNC_GROUP": f"status-async-{uuid.uuid4().hex[:8]}"}
    server = start_server(env)
    server.wait_ready()
    messages = synth.generate(token=team["api_token"], events=EVENTS, persons=20, seed=3, now=dt.datetime.now(dt.UTC))
    produce(env["KAFKA_HOSTS"], env["KAFKA_CONSUMPTION_TOPIC"], [(m.key, m.value) for m in messages])

    def caught_up() -> dict | None:
        found = status_json(env)
        ingestion = found["kafka_lag"][0]
        consumed = sum(p["committed"] or 0 for p in ingestion["partitions"])
        return found if ingestion["lag"] == 0 and consumed == EVENTS else None

    wait_until(caught_up, 90, "the ingestion group to commit every event")
    assert server.stop() == 0, server.log()
    # Seeded once no server runs: a job runner must not take the jobs away before we look.
    task = f"status_e2e_{uuid.uuid4().hex[:8]}"
    config_id = seed_postgres(env["DATABASE_URL"], team["id"], task)
    found = status_json(env)
    text = cli("status", env=env, timeout=60, check=True).stdout

    ingestion, writer, async_group = found["kafka_lag"]
    assert (ingestion["role"], ingestion["group"]) == ("ingestion", env["KAFKA_CONSUMER_GROUP"])
    assert ingestion["topics"] == [env["KAFKA_CONSUMPTION_TOPIC"]]
    partitions = ingestion["partitions"]
    assert [p["partition"] for p in partitions] == list(range(len(partitions))) and partitions
    for p in partitions:
        assert p["topic"] == env["KAFKA_CONSUMPTION_TOPIC"]
        assert p["lag"] == 0 and p["committed"] == p["end"] >= p["beginning"] == 0, p
    assert sum(p["end"] for p in partitions) == EVENTS

    # The direct sink produces no rows to Kafka: the writer's topics hold nothing to read.
    assert (writer["role"], writer["group"], writer["lag"]) == ("writer", env["KAFKA_WRITER_GROUP"], 0)
    assert found["writer_backlog"] == {"group": env["KAFKA_WRITER_GROUP"], "lag": 0}
    assert (async_group["role"], async_group["group"]) == ("async", env["KAFKA_ASYNC_GROUP"])

    # The Postgres is shared with other tests: look at what this test made.
    tasks = {t["task_identifier"]: t for t in found["job_queue"]["tasks"]}
    mine = tasks[task]
    assert (mine["depth"], mine["due"], mine["locked"]) == (3, 2, 0)
    assert 295 <= mine["oldest_due_seconds"] < 600
    assert found["job_queue"]["depth"] >= 3
    errors = {e["config_id"]: e for e in found["plugins"]["errors"]}
    assert errors[config_id]["plugin"] == "status e2e"
    assert errors[config_id]["message"] == "Error: boom at line 3"
    assert (errors[config_id]["team_id"], errors[config_id]["enabled"]) == (team["id"], False)
    assert found["plugins"]["disabled"] >= 1 and found["plugins"]["with_errors"] >= 1

    for title in SECTIONS:
        assert f"\n{title}\n" in f"\n{text}"
    assert env["KAFKA_CONSUMPTION_TOPIC"] in text and task in text and "Error: boom at line 3" in text


def test_status_against_unreachable_services_exits_1_within_the_timeout(server_env):
    for variable, value, service in (
        ("KAFKA_HOSTS", "127.0.0.1:1", "kafka"),
        ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none", "postgres"),
    ):
        started = time.monotonic()
        result = cli("status", env={**server_env, variable: value}, timeout=60)
        elapsed = time.monotonic() - started
        assert result.returncode == 1, result.stderr
        assert result.stdout == ""
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith(f"plugin-server: {service} unavailable:"), result.stderr
        assert "Traceback" not in result.stderr
        assert elapsed < TIMEOUT + 5, elapsed  # the timeout, plus the interpreter's start


def test_status_bad_flags_exit_2(server_env):
    for args in (["status", "--bogus"], ["status", "--timeout", "0"], ["status", "--timeout", "soon"], ["status", "x"]):
        result = cli(*args, env=server_env)
        assert result.returncode == 2, (args, result.stderr)
        assert "usage:" in result.stderr and result.stdout == ""
