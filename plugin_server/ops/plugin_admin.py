"""`plugin-server plugins ...`: install, update and reload plugins, and read their logs, without
the HTTP API (operators and tests).

- install: validates the folder or archive (vm/package.py: plugin.json, the sandbox policy for
  every file, the config against the schema), writes the plugin, its sources and an enabled
  config to Postgres in one transaction, and publishes `reload-plugins`.
- update: replaces an installed plugin's sources (validated the same way) and publishes.
- logs: a config's entries from ClickHouse `plugin_log_entries`, oldest first.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from plugin_server.app.config import Settings
from plugin_server.core.errors import PluginServerError
from plugin_server.ops import tools
from plugin_server.storage.plugins import Attachment, PluginStore
from plugin_server.storage.postgres import open_postgres
from plugin_server.storage.redis import open_redis
from plugin_server.storage.teams import TeamStore
from vm import config_schema
from vm.package import PackageError, load_package

MAX_ATTACHMENT_BYTES = 10_000_000
LOGS_SQL = """
SELECT toString(timestamp) AS timestamp, source, type, message, toString(instance_id) AS instance_id,
    plugin_id, plugin_config_id, team_id
FROM (
    SELECT * FROM plugin_log_entries
    WHERE plugin_config_id = {config_id} AND timestamp >= parseDateTime64BestEffort('{since}', 6)
    ORDER BY timestamp
    LIMIT {limit}
)
ORDER BY timestamp"""


class PluginAdminError(PluginServerError):
    """An install or update the operator must fix (bad folder, config, team)."""


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
    out = []
    for key, path in pairs.items():
        file = Path(path)
        if not file.is_file():
            raise PluginAdminError(f"attachment {key!r}: no file {path}")
        contents = file.read_bytes()
        if len(contents) > MAX_ATTACHMENT_BYTES:
            raise PluginAdminError(f"attachment {key!r}: larger than {MAX_ATTACHMENT_BYTES} bytes")
        content_type = "application/json" if file.suffix == ".json" else "application/octet-stream"
        out.append(Attachment(key, content_type, file.name, contents))
    return out


async def install(
    settings: Settings, path: Path, *, team_id: int, config: dict[str, str], order: int, attachments: dict[str, str]
) -> dict[str, Any]:
    package = _load(path)
    files = _attachments(attachments)
    try:
        config_schema.validate(package.fields, config, attachments=frozenset(a.key for a in files))
    except config_schema.ConfigError as exc:
        raise PluginAdminError(f"config: {exc}") from None
    async with open_postgres(settings.database_url, max_size=2) as pg:
        if not await TeamStore(pg=pg).by_ids([team_id]):
            raise PluginAdminError(f"no team with id {team_id}")
        plugin_id, config_id = await PluginStore(pg=pg).install(
            team_id=team_id, name=package.name, description=package.description, url=package.url,
            config_schema=package.config_schema, capabilities=package.capabilities, sources=package.sources,
            config=config, order=order, attachments=files,
        )  # fmt: skip
    await reload(settings)
    return {
        "plugin_id": plugin_id,
        "plugin_config_id": config_id,
        "name": package.name,
        "capabilities": package.capabilities,
    }


async def update(settings: Settings, path: Path, *, plugin_id: int) -> dict[str, Any]:
    package = _load(path)
    async with open_postgres(settings.database_url, max_size=2) as pg:
        if await pg.fetchval("SELECT count(*) FROM posthog_plugin WHERE id = $1", plugin_id) == 0:
            raise PluginAdminError(f"no plugin with id {plugin_id}")
        store = PluginStore(pg=pg)
        await store.update_sources(plugin_id, package.sources)
        await store.set_capabilities(plugin_id, package.capabilities)
    await reload(settings)
    return {"plugin_id": plugin_id, "name": package.name, "capabilities": package.capabilities}


async def reload(settings: Settings) -> int:
    """Publish on the reload channel; how many processes heard it."""
    async with open_redis(settings.redis_url) as redis:
        return await redis.publish(settings.plugins_reload_pubsub_channel, b"reload")


async def logs(settings: Settings, *, config_id: int, since: dt.datetime | None, limit: int) -> list[dict[str, Any]]:
    start = (since or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    sql = LOGS_SQL.format(config_id=int(config_id), since=start, limit=int(limit))
    raw = await tools.query(settings, sql)
    return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]


def _load(path: Path):
    try:
        return load_package(path)
    except PackageError as exc:
        raise PluginAdminError(f"{path}: {exc}") from None
