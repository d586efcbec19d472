"""Plugins end to end: installed with `plugin-server plugins install`, run by a server process.

Four plugins in one team's chain: one changes events, one drops some, one raises on every tenth,
one loops forever. The right events land in ClickHouse, changed as expected, and the plugins'
logs say why. Then a plugin is updated and `reload-plugins` published while events flow: none is
lost, and events after the reload carry the new version's change.
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.e2e.conftest import cli, query, wait_until
from tests.e2e.test_ingest_e2e import produce

ENRICH = """
def process_event(event, meta):
    event["properties"]["enriched"] = meta.config["label"]
    event["properties"]["version"] = "VERSION"
    return event
"""
DROP_FIFTHS = """
def process_event(event, meta):
    if event["properties"].get("n", 1) % 5 == 0:
        return None
    return event
"""
RAISE_TENTHS = """
def process_event(event, meta):
    if event["properties"].get("n", 0) % 10 == 3:
        raise ValueError("refusing event " + str(event["properties"]["n"]))
    event["properties"]["checked"] = True
    return event
"""
LOOP = """
def process_event(event, meta):
    while True:
        pass
"""


def write_plugin(root, name: str, source: str, config=None) -> str:
    folder = root / name
    folder.mkdir()
    (folder / "plugin.json").write_text(json.dumps({"name": name, "main": "main.py", "config": config or []}))
    (folder / "main.py").write_text(source)
    return str(folder)


def install(env, path: str, team_id: int, *extra: str) -> dict:
    result = cli("plugins", "install", path, "--team", str(team_id), *extra, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def capture(token: str, n: int, *, run: str) -> tuple[bytes, bytes]:
    data = {"event": "$pageview", "properties": {"n": n, "run": run}}
    envelope = {
        "uuid": str(uuid.uuid4()), "distinct_id": f"user-{n % 7}", "ip": None, "site_url": "https://example.com",
        "data": json.dumps(data), "now": "2024-06-01T12:00:00+00:00", "token": token,
    }  # fmt: skip
    return f"{token}:user-{n % 7}".encode(), json.dumps(envelope).encode()


def events_of(env, team_id: int, run: str) -> list[dict]:
    rows = query(
        f"SELECT properties FROM events WHERE team_id = {team_id} AND JSONExtractString(properties, 'run') = '{run}'",
        env,
    )
    return [json.loads(r["properties"]) for r in rows]


@pytest.mark.slow
def test_four_plugins_change_drop_fail_and_hang_and_a_reload_loses_nothing(server_env, start_server, team, tmp_path):
    env = dict(server_env, TASK_TIMEOUT="0.3")
    label_schema = [{"key": "label", "type": "string", "required": True}]
    enrich = install(env, write_plugin(tmp_path, "enrich", ENRICH.replace("VERSION", "v1"), label_schema), team["id"],
                     "--config", "label=shiny", "--order", "1")  # fmt: skip
    drop = install(env, write_plugin(tmp_path, "drop", DROP_FIFTHS), team["id"], "--order", "2")
    raiser = install(env, write_plugin(tmp_path, "raiser", RAISE_TENTHS), team["id"], "--order", "3")
    looper = install(env, write_plugin(tmp_path, "looper", LOOP), team["id"], "--order", "4")
    assert enrich["capabilities"]["methods"] == ["process_event"]

    server = start_server(env)
    server.wait_ready()
    kafka, topic = env["KAFKA_HOSTS"], env["KAFKA_CONSUMPTION_TOPIC"]
    produce(kafka, topic, [capture(team["api_token"], n, run="first") for n in range(100)])
    wait_until(lambda: len(events_of(env, team["id"], "first")) >= 80, 120, "the 80 events no plugin dropped")
    landed = events_of(env, team["id"], "first")
    assert sorted(p["n"] for p in landed) == [n for n in range(100) if n % 5]
    for properties in landed:
        assert properties["enriched"] == "shiny" and properties["version"] == "v1"
        assert properties.get("checked", False) is (properties["n"] % 10 != 3)

    def messages(config_id: int) -> list[dict]:
        result = cli("plugins", "logs", "--config", str(config_id), env=env)
        assert result.returncode == 0, result.stderr
        return [json.loads(line) for line in result.stdout.splitlines()]

    wait_until(
        lambda: len([m for m in messages(raiser["plugin_config_id"]) if m["type"] == "ERROR"]) >= 10, 30, "raiser logs"
    )
    errors = [m["message"] for m in messages(raiser["plugin_config_id"]) if m["type"] == "ERROR"]
    assert len(errors) == 10 and all("refusing event" in e for e in errors)
    wait_until(
        lambda: any("Disabling" in m["message"] for m in messages(looper["plugin_config_id"])), 30, "looper disabled"
    )
    looper_logs = [m["message"] for m in messages(looper["plugin_config_id"])]
    assert sum("timed out" in m and m.startswith("process_event failed") for m in looper_logs) == 3
    assert not any(m["type"] == "ERROR" for m in messages(drop["plugin_config_id"]))

    # hot reload: a new version while events flow
    produce(kafka, topic, [capture(team["api_token"], n, run="during") for n in range(1, 200) if n % 5])
    (tmp_path / "enrich" / "main.py").write_text(ENRICH.replace("VERSION", "v2"))
    updated = cli("plugins", "update", str(tmp_path / "enrich"), "--plugin", str(enrich["plugin_id"]), env=env)
    assert updated.returncode == 0, updated.stderr
    produce(kafka, topic, [capture(team["api_token"], n, run="during") for n in range(200, 400) if n % 5])

    def reloaded() -> bool:
        produce(kafka, topic, [capture(team["api_token"], 1, run=f"probe-{uuid.uuid4().hex[:6]}")])
        rows = query(
            f"SELECT count() AS c FROM events WHERE team_id = {team['id']} AND JSONExtractString(properties, 'version') = 'v2'",
            env,
        )
        return int(rows[0]["c"]) > 0

    wait_until(reloaded, 60, "the v2 plugin to run")
    produce(kafka, topic, [capture(team["api_token"], n, run="after") for n in range(1, 50) if n % 5])
    wait_until(lambda: len(events_of(env, team["id"], "after")) >= 39, 60, "events after the reload")
    during = events_of(env, team["id"], "during")
    wait_until(lambda: len(events_of(env, team["id"], "during")) >= 319, 60, "every event produced during the reload")
    during = events_of(env, team["id"], "during")
    assert sorted(p["n"] for p in during) == [n for n in range(1, 400) if n % 5]  # none lost, none twice
    assert {p["version"] for p in during} <= {"v1", "v2"}
    assert {p["version"] for p in events_of(env, team["id"], "after")} == {"v2"}
    assert server.stop() == 0, server.log()


def test_plugins_install_refuses_bad_plugins_with_clear_errors(server_env, team, tmp_path):
    env = server_env
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (str(empty), "no plugin.json"),
        (str(tmp_path / "missing"), "no such folder or archive"),
        (
            write_plugin(tmp_path, "escape", "import os\ndef process_event(event, meta):\n    return event\n"),
            "main.py:1: import of 'os'",
        ),
        (write_plugin(tmp_path, "syntax", "def process_event(event, meta)\n    return event\n"), "main.py:1"),
        (write_plugin(tmp_path, "nothing", "x = 1\n"), "exports nothing"),
        (write_plugin(tmp_path, "needs", ENRICH, [{"key": "label", "required": True}]), "'label' is required"),
    ]
    for path, message in cases:
        result = cli("plugins", "install", path, "--team", str(team["id"]), env=env)
        assert result.returncode == 1, (path, result.stdout)
        assert message in result.stderr, (message, result.stderr)
    ok = write_plugin(tmp_path, "fine", DROP_FIFTHS)
    result = cli("plugins", "install", ok, "--team", "999999", env=env)
    assert result.returncode == 1 and "no team with id 999999" in result.stderr
    result = cli("plugins", "install", ok, "--team", str(team["id"]), "--config", "novalue", env=env)
    assert result.returncode == 1 and "--config must be KEY=VALUE" in result.stderr
    result = cli("plugins", "logs", env=env)
    assert result.returncode == 2 and "--config" in result.stderr


COUNT_ON_EVENT = """
def on_event(event, meta):
    meta.utils.cursor.increment("seen")
    meta.utils.cursor.increment("sum", event["properties"]["n"])
"""


def storage_value(env, config_id: int, key: str) -> int:
    import trio

    from plugin_server.core import aio
    from plugin_server.storage.postgres import open_postgres

    async def main() -> int:
        async with aio.open_loop(), open_postgres(env["DATABASE_URL"], max_size=1) as pg:
            value = await pg.fetchval(
                "SELECT value FROM posthog_pluginstorage WHERE plugin_config_id = $1 AND key = $2", config_id, key
            )
        return int(value or 0)

    return trio.run(main)


@pytest.mark.parametrize("sink", ["direct", "kafka"])
def test_on_event_sees_every_written_event(server_env, start_server, team, tmp_path, sink):
    env = dict(server_env, INGESTION_SINK=sink)
    config_id = install(env, write_plugin(tmp_path, "counter", COUNT_ON_EVENT), team["id"])["plugin_config_id"]
    server = start_server(env)
    server.wait_ready()
    produce(
        env["KAFKA_HOSTS"],
        env["KAFKA_CONSUMPTION_TOPIC"],
        [capture(team["api_token"], n, run="async") for n in range(40)],
    )
    wait_until(lambda: storage_value(env, config_id, "seen") >= 40, 60, "on_event for every event")
    assert server.stop() == 0, server.log()
    assert storage_value(env, config_id, "seen") == 40  # each once (no crash here, so no redelivery)
    assert storage_value(env, config_id, "sum") == sum(range(40))
