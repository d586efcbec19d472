"""`plugin-server plugins ...`: the CLI's wiring of plugin administration (plugin_server/plugins/
admin.py, which does the work on the stores it is handed) from Settings.

- install, update: Postgres (plugin and team stores) and Redis (the reload channel); the package
  and the config are checked before anything is opened.
- reload: Redis only.
- logs: ClickHouse only. A ClickHouse server is read through the adapter; an embedded chDB, which
  only the server process may open, through the running server's /query endpoint.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from pathlib import Path
from typing import Any

from plugin_server.app.config import Settings
from plugin_server.ops import tools
from plugin_server.plugins import admin
from plugin_server.plugins.admin import ClickHouseLogReader, PluginAdminError, ReloadChannel
from plugin_server.storage.clickhouse import open_clickhouse
from plugin_server.storage.plugins import Attachment, PluginStore
from plugin_server.storage.postgres import open_postgres
from plugin_server.storage.redis import Redis, open_redis
from plugin_server.storage.teams import TeamStore


def parse_assignments(pairs: list[str] | None, what: str) -> dict[str, str]:
    """KEY=VALUE pairs from the command line."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise PluginAdminError(f"{what} must be KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


def _attachments(pairs: dict[str, str]) -> list[Attachment]:
    """KEY=PATH attachments read from disk."""
    out = []
    for key, path in pairs.items():
        file = Path(path)
        if not file.is_file():
            raise PluginAdminError(f"attachment {key!r}: no file {path}")
        out.append(admin.attachment(key, file.name, file.read_bytes()))
    return out


def _reload_channel(settings: Settings, redis: Redis) -> ReloadChannel:
    return ReloadChannel(redis=redis, channel=settings.plugins_reload_pubsub_channel)


async def install(
    settings: Settings, path: Path, *, team_id: int, config: dict[str, str], order: int, attachments: dict[str, str]
) -> dict[str, Any]:
    package = admin.read_package(path)
    files = _attachments(attachments)
    admin.check_config(package, config, files)
    async with open_postgres(settings.database_url, max_size=2) as pg, open_redis(settings.redis_url) as redis:
        return await admin.install(
            package, team_id=team_id, config=config, order=order, attachments=files,
            plugins=PluginStore(pg=pg), teams=TeamStore(pg=pg), reload=_reload_channel(settings, redis),
        )  # fmt: skip


async def update(settings: Settings, path: Path, *, plugin_id: int) -> dict[str, Any]:
    package = admin.read_package(path)
    async with open_postgres(settings.database_url, max_size=2) as pg, open_redis(settings.redis_url) as redis:
        return await admin.update(
            package, plugin_id=plugin_id, plugins=PluginStore(pg=pg), reload=_reload_channel(settings, redis)
        )


async def reload(settings: Settings) -> int:
    """Publish on the reload channel; how many processes heard it."""
    async with open_redis(settings.redis_url) as redis:
        return await _reload_channel(settings, redis).publish()


class _ServerQuery:
    """The running server's /query endpoint (ops/tools.py `query`), standing in for ClickHouse
    when it is an embedded chDB that only the server process may open."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def query_json(self, sql: str) -> bytes:
        return await tools.query(self._settings, sql)


async def logs(settings: Settings, *, config_id: int, since: dt.datetime | None, limit: int) -> list[dict[str, Any]]:
    if urllib.parse.urlsplit(settings.clickhouse_url).scheme in ("http", "https"):
        async with open_clickhouse(settings.clickhouse_url) as ch:
            return await ClickHouseLogReader(clickhouse=ch).read(config_id=config_id, since=since, limit=limit)
    reader = ClickHouseLogReader(clickhouse=_ServerQuery(settings))
    return await reader.read(config_id=config_id, since=since, limit=limit)
