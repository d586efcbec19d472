"""`plugin-server dev --data-dir DIR`: the embedded stack, migrations and the server, in one command.

Start: lock DIR (one dev per directory), start Postgres, Redis and the broker, migrate, create a
demo team on first start, run every mode, and once consumers have their partitions print the
connection settings and write them to DIR/stack.env. Stop (Ctrl-C, SIGTERM): drain what is still
queued in the broker (it keeps messages only in memory), stop the server, then every service.
DIR keeps Postgres, Redis and ClickHouse data between starts.
"""

from __future__ import annotations

import fcntl
import json
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path

import trio

from plugin_server.app.config import Settings
from plugin_server.app.runner import serve
from plugin_server.app.server import Server, ServerHandle
from plugin_server.core import aio, logs
from plugin_server.core.errors import PluginServerError
from plugin_server.ops import tools
from plugin_server.ops.embedded import EmbeddedStack, choose_port
from plugin_server.storage.postgres import open_postgres
from plugin_server.storage.teams import Team, TeamStore

log = logs.get(__name__)
READY_TIMEOUT_SECONDS = 60.0
DEMO_TEAM_NAME = "Demo"


def _admin_token(data_dir: Path) -> str:
    """Kept in DIR so a restart keeps the same token (tools holding stack.env keep working)."""
    path = data_dir / "secrets.json"
    if path.exists():
        token: str = json.loads(path.read_text())["admin_token"]  # written below, a str
        return token
    token = secrets.token_urlsafe(32)
    path.write_text(json.dumps({"admin_token": token}))
    path.chmod(0o600)
    return token


def _write_env(path: Path, values: dict[str, str]) -> None:
    text = "".join(f"{k}={v}\n" for k, v in values.items())
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(path)  # readers see all lines or none


def run_dev(environ: Mapping[str, str], data_dir: Path) -> int:
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    lock_file = (data_dir / ".lock").open("w")
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"plugin-server: another dev server is using {data_dir}", file=sys.stderr)
        return 1
    env_path = data_dir / "stack.env"
    env_path.unlink(missing_ok=True)
    stack = EmbeddedStack(data_dir)
    try:
        urls = stack.start()
        overrides = {
            **urls.as_env(),
            "HTTP_PORT": str(choose_port(int(environ.get("HTTP_PORT", "6738") or 6738))),
            "PLUGIN_SERVER_ADMIN_TOKEN": _admin_token(data_dir),
            "PLUGIN_SERVER_MODE": "all",
            "DRAIN_ON_STOP": "true",
        }
        settings = Settings.from_env({**environ, **overrides})
        trio.run(_main, settings, env_path)
    finally:
        env_path.unlink(missing_ok=True)
        stack.stop()
        lock_file.close()
    log.info("dev stack stopped", data_dir=str(data_dir))
    return 0


async def _main(settings: Settings, env_path: Path) -> None:
    async with aio.open_loop():
        report = await tools.migrate(settings)
        log.info("migrated", **report)
        team = await _demo_team(settings)
        server = Server(settings)

        async def on_ready(handle: ServerHandle) -> None:
            with trio.move_on_after(READY_TIMEOUT_SECONDS):
                while not handle.state.is_ready():
                    await trio.sleep(0.05)
            if not handle.state.is_ready():
                raise PluginServerError(f"consumers got no partitions within {READY_TIMEOUT_SECONDS}s")
            values = {
                "DATABASE_URL": settings.database_url,
                "REDIS_URL": settings.redis_url,
                "KAFKA_HOSTS": settings.kafka_hosts,
                "CLICKHOUSE_URL": settings.clickhouse_url,
                "HTTP_PORT": str(handle.http_port),
                "TEAM_ID": str(team.id),
                "TEAM_API_TOKEN": team.api_token,
                "PLUGIN_SERVER_ADMIN_TOKEN": settings.plugin_server_admin_token,
            }
            _write_env(env_path, values)
            for name, value in values.items():
                print(f"{name}={value}", flush=True)
            print(f"# ready; these settings are in {env_path}", flush=True)

        await serve(server, on_ready=on_ready, on_stopping=lambda: env_path.unlink(missing_ok=True))


async def _demo_team(settings: Settings) -> Team:
    async with open_postgres(settings.database_url, max_size=1) as pg:
        store = TeamStore(pg=pg)
        team = await store.first() or await store.create(DEMO_TEAM_NAME)
    return team
