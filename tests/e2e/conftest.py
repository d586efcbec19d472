"""End-to-end helpers: real `plugin-server` processes, driven through their CLI and HTTP port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from plugin_server.core.net import free_port

ADMIN = "e2e-admin-token"
START_TIMEOUT = 90.0


def cli(*args: str, env: dict[str, str], timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess:
    """Run `plugin-server ARGS` as a user would; returns the finished process."""
    result = subprocess.run(
        [sys.executable, "-m", "plugin_server", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"plugin-server {' '.join(args)} exited {result.returncode}: {result.stderr[-3000:]}")
    return result


def query(sql: str, env: dict[str, str]) -> list[dict]:
    result = cli("query", sql, env=env, check=True)
    return [json.loads(line) for line in result.stdout.splitlines()]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class ServerProcess:
    """A `plugin-server` process with its own log file; stopped with SIGTERM like in production."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "plugin_server", *args], env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def port(self) -> int:
        return int(self.env["HTTP_PORT"])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                return httpx.get(f"http://127.0.0.1:{self.port}/_ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout, "the server to be ready")

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"server did not stop within {timeout}s of SIGTERM:\n{self.log()}") from None
        self.close()
        return self.proc.returncode

    def close(self) -> None:
        if not self._log.closed:
            self._log.close()


@pytest.fixture
def server_env(services, settings, tmp_path) -> dict[str, str]:
    """Environment for a server process: the session's services, this test's topics, a free port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "CLICKHOUSE_", "PLUGIN_SERVER_"))}
    env.update(
        {
            "DATABASE_URL": services.database_url,
            "REDIS_URL": services.redis_url,
            "KAFKA_HOSTS": services.kafka_hosts,
            "CLICKHOUSE_URL": services.clickhouse_url_for_process(tmp_path / "clickhouse"),
            "KAFKA_CONSUMPTION_TOPIC": settings.kafka_consumption_topic,
            "KAFKA_DEAD_LETTER_TOPIC": settings.kafka_dead_letter_topic,
            "CLICKHOUSE_JSON_EVENTS_KAFKA_TOPIC": settings.clickhouse_json_events_kafka_topic,
            "CLICKHOUSE_INGESTION_WARNINGS_KAFKA_TOPIC": settings.clickhouse_ingestion_warnings_kafka_topic,
            "CLICKHOUSE_PERSON_KAFKA_TOPIC": settings.clickhouse_person_kafka_topic,
            "CLICKHOUSE_PERSON_DISTINCT_ID_KAFKA_TOPIC": settings.clickhouse_person_distinct_id_kafka_topic,
            "CLICKHOUSE_GROUPS_KAFKA_TOPIC": settings.clickhouse_groups_kafka_topic,
            "CLICKHOUSE_PLUGIN_LOG_ENTRIES_KAFKA_TOPIC": settings.clickhouse_plugin_log_entries_kafka_topic,
            "KAFKA_CONSUMER_GROUP": settings.kafka_consumer_group,
            "KAFKA_WRITER_GROUP": settings.kafka_writer_group,
            "HTTP_PORT": str(free_port()),
            "PLUGIN_SERVER_ADMIN_TOKEN": ADMIN,
            "INGESTION_BATCH_WAIT_MS": "20",
            "LOG_LEVEL": "info",
        }
    )
    return env


@pytest.fixture
def start_server(tmp_path) -> Iterator:
    started: list[ServerProcess] = []

    def start(env: dict[str, str], *args: str, name: str = "server") -> ServerProcess:
        process = ServerProcess(list(args), env, tmp_path / f"{name}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait()
        process.close()


@pytest.fixture
def team(server_env) -> dict:
    """A team made the way an operator makes one: `plugin-server teams create`."""
    result = cli("teams", "create", "e2e team", env=server_env, check=True)
    created = json.loads(result.stdout)
    assert set(created) >= {"id", "api_token"}
    return created
