"""`plugin-server dev`: one command brings up the stack; SIGTERM drains, stops everything, keeps data."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from plugin_server.core.net import free_port
from tests.e2e.conftest import cli, query, wait_until

EVENTS = 3000


def read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))


def alive(pids: list[int]) -> list[int]:
    """The pids still running (zombies count as gone: they have exited)."""
    result = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                result.append(pid)
        except psutil.NoSuchProcess:
            pass
    return result


def children_names(pid: int) -> tuple[list[int], set[str]]:
    children = psutil.Process(pid).children(recursive=True)
    return [c.pid for c in children], {c.name() for c in children}


class Dev:
    def __init__(self, data_dir: Path, env: dict[str, str], log: Path) -> None:
        self.data_dir = data_dir
        self._out = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "plugin_server", "dev", "--data-dir", str(data_dir)],
            env=env, stdout=subprocess.PIPE, stderr=self._out,
        )  # fmt: skip
        self.log = log

    def wait_ready(self) -> tuple[dict[str, str], list[str]]:
        env_file = self.data_dir / "stack.env"
        wait_until(lambda: env_file.exists() or self.proc.poll() is not None, 120, "stack.env")
        assert self.proc.poll() is None, self.log.read_text()[-4000:]
        printed = []
        while len(printed) < len(read_env(env_file)):
            printed.append(self.proc.stdout.readline().decode().strip())
        return read_env(env_file), printed

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(180)
        self.close()
        return code

    def close(self) -> None:
        if self.proc.poll() is None:  # a failed test: SIGKILL, the stack dies with it (PDEATHSIG)
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self._out.close()


@pytest.fixture
def start_dev():
    started: list[Dev] = []

    def start(data_dir: Path, env: dict[str, str], log: Path) -> Dev:
        started.append(Dev(data_dir, env, log))
        return started[-1]

    yield start
    for dev in started:
        dev.close()


@pytest.mark.slow
def test_dev_one_command_stack_drains_on_stop_and_keeps_data(tmp_path, services, start_dev):
    if services.external:
        pytest.skip("dev always runs the embedded stack; nothing to test against external services")
    data_dir = tmp_path / "dev"
    base_env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "KAFKA_HOSTS", "CLICKHOUSE_URL")
    }
    base_env["HTTP_PORT"] = "6738"
    log = tmp_path / "dev.log"

    # The default HTTP and Kafka ports are taken: dev must choose free ones.
    with socket.socket() as taken_http, socket.socket() as taken_kafka:
        for sock, port in ((taken_http, 6738), (taken_kafka, 9092)):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
                sock.listen()
            except OSError:
                pass  # already taken by something else: just as good
        dev = start_dev(data_dir, base_env, log)
        values, printed = dev.wait_ready()

    assert printed == [f"{k}={v}" for k, v in values.items()]
    for name in ("DATABASE_URL", "REDIS_URL", "KAFKA_HOSTS", "CLICKHOUSE_URL", "HTTP_PORT", "TEAM_ID", "TEAM_API_TOKEN",
                 "PLUGIN_SERVER_ADMIN_TOKEN"):  # fmt: skip
        assert values.get(name), name
    assert values["HTTP_PORT"] != "6738" and not values["KAFKA_HOSTS"].endswith(":9092")
    assert httpx.get(f"http://127.0.0.1:{values['HTTP_PORT']}/_ready", timeout=5).status_code == 200
    pids, names = children_names(dev.proc.pid)
    assert {"postgres", "redis-server", "tansu"} <= names, names

    env = {**base_env, **values}
    cli("synth", "--token", values["TEAM_API_TOKEN"], "--events", str(EVENTS), "--seed", "5", env=env, check=True)
    # Stop at once: whatever is still queued in the in-memory broker must be ingested first.
    assert dev.stop() == 0, log.read_text()[-4000:]
    assert not (data_dir / "stack.env").exists()
    wait_until(lambda: not alive(pids), 20, "every stack process to exit")

    second = start_dev(data_dir, dict(base_env, HTTP_PORT=str(free_port())), log)
    values_again, _ = second.wait_ready()
    pids, _ = children_names(second.proc.pid)
    env_again = {**base_env, **values_again}
    try:
        assert values_again["TEAM_ID"] == values["TEAM_ID"]  # the demo team is made once
        assert values_again["PLUGIN_SERVER_ADMIN_TOKEN"] == values["PLUGIN_SERVER_ADMIN_TOKEN"]
        rows = query(
            f"SELECT count() AS c, uniqExact(uuid) AS u FROM events WHERE team_id = {values['TEAM_ID']}", env_again
        )
        assert {k: int(v) for k, v in rows[0].items()} == {"c": EVENTS, "u": EVENTS}
    finally:
        assert second.stop() == 0
    wait_until(lambda: not alive(pids), 20, "every stack process to exit")


def test_second_dev_on_the_same_directory_is_refused(tmp_path, services):
    if services.external:
        pytest.skip("dev runs the embedded stack")
    data_dir = tmp_path / "dev"
    data_dir.mkdir()
    import fcntl

    with (data_dir / ".lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = cli("dev", "--data-dir", str(data_dir), env=dict(os.environ))
    assert result.returncode == 1 and "another dev server" in result.stderr
