"""The command line as an operator meets it: help, bad settings, migrate, healthcheck, errors."""

from __future__ import annotations

import uuid

import trio

from plugin_server.app.config import describe
from plugin_server.core import aio
from plugin_server.storage.postgres import open_postgres
from tests.e2e.conftest import cli


def fresh_database(database_url: str) -> str:
    """A new, empty database on the session's Postgres; returns its URL."""
    name = f"fresh_{uuid.uuid4().hex[:8]}"

    async def main() -> None:
        async with aio.open_loop(), open_postgres(database_url, max_size=1) as pg:
            await pg.execute(f"CREATE DATABASE {name}")

    trio.run(main)
    return database_url.rsplit("/", 1)[0] + f"/{name}"


def test_help_lists_every_setting_and_version_prints(server_env):
    result = cli("--help", env=server_env, check=True)
    for name, default, _ in describe():
        assert name in result.stdout
    assert "dev" in result.stdout and "synth" in result.stdout and "query" in result.stdout
    version = cli("--version", env=server_env, check=True)
    assert version.stdout.startswith("plugin-server ")


def test_bad_settings_stop_startup_with_one_line_and_exit_2(server_env):
    cases = {
        "PLUGIN_SERVER_MODE": "sideways",
        "WORKER_CONCURRENCY": "-3",
        "TASKS_PER_WORKER": "many",
        "DATABASE_URL": "not a url",
        "CLICKHOUSE_URL": "ftp://host/db",
        "KAFKA_HOSTS": "nohostport",
        "HTTP_PORT": "70000",
    }
    for variable, value in cases.items():
        result = cli(env=dict(server_env, **{variable: value}))
        assert result.returncode == 2, (variable, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and variable in lines[0] and value in lines[0] and "expected" in lines[0], lines
        assert "Traceback" not in result.stderr


def test_bad_arguments_exit_2(server_env):
    assert cli("synth", "--token", "t", "--events", "-1", env=server_env).returncode == 2
    assert cli("synth", "--events", "5", env=server_env).returncode == 2  # no token
    assert cli("--mode", "nope", env=server_env).returncode == 2
    assert cli("teams", env=server_env).returncode == 2


def test_modes_without_capabilities_say_so_and_fail(server_env):
    for mode in ("jobs", "scheduler", "api"):
        result = cli("--mode", mode, env=server_env)
        assert result.returncode == 1 and "nothing to run yet" in result.stderr


def test_migrate_applies_once_then_reports_up_to_date(server_env, services, tmp_path):
    env = dict(
        server_env,
        DATABASE_URL=fresh_database(services.database_url),
        CLICKHOUSE_URL=services.clickhouse_url_for_process(tmp_path / "migrate-ch"),
    )
    first = cli("--migrate", env=env, check=True)
    assert "postgres: applied 0001_initial" in first.stdout
    assert "kafka_topics: created" in first.stdout
    second = cli("--migrate", env=env, check=True)
    assert "postgres: up to date" in second.stdout and "kafka_topics: up to date" in second.stdout
    if not services.external:
        assert "clickhouse: applied 0001_initial" in first.stdout and "clickhouse: up to date" in second.stdout


def test_server_refuses_an_unmigrated_database(server_env, services, start_server):
    env = dict(server_env, DATABASE_URL=fresh_database(services.database_url))
    server = start_server(env)
    assert server.proc.wait(60) == 1
    assert "run `plugin-server --migrate` first" in server.log()
    assert "Traceback" not in server.log()


def test_healthcheck_reflects_the_running_server(server_env, start_server):
    assert cli("--healthcheck", env=server_env).returncode == 1  # nothing running yet
    server = start_server(server_env)
    server.wait_ready()
    assert cli("--healthcheck", env=server_env).returncode == 0
    assert server.stop() == 0


def test_second_server_on_the_same_embedded_clickhouse_gets_a_clear_error(server_env, services, start_server):
    if services.external:
        return  # a ClickHouse server has no such lock
    first = start_server(server_env, name="first")
    first.wait_ready()
    from plugin_server.core.net import free_port

    second = start_server(dict(server_env, HTTP_PORT=str(free_port())), name="second")
    assert second.proc.wait(60) == 1
    assert "in use by another process" in second.log() and "Traceback" not in second.log()
    assert first.stop() == 0


def test_query_errors_are_one_clear_line(server_env):
    no_server = cli("query", "SELECT 1", env=server_env)
    assert no_server.returncode == 1 and "no plugin-server answering" in no_server.stderr
    no_token = cli("query", "SELECT 1", env={k: v for k, v in server_env.items() if k != "PLUGIN_SERVER_ADMIN_TOKEN"})
    if server_env["CLICKHOUSE_URL"].startswith("chdb"):
        assert no_token.returncode == 1 and "PLUGIN_SERVER_ADMIN_TOKEN" in no_token.stderr
    assert "Traceback" not in no_server.stderr + no_token.stderr
