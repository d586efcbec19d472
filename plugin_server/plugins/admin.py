"""Plugin administration on stores handed in: install and update plugins, ask every running server
to reload, read a config's logs. The CLI (`plugin-server plugins ...`, plugin_server/ops/
plugin_admin.py) builds the stores from Settings; an HTTP API can bring its own.

- `read_package(path)`: a folder or archive checked whole (vm/package.py: plugin.json, the sandbox
  policy for every file, what the code exports) before anything is written.
- `install`: the config checked against the plugin's schema and the team checked, then the plugin,
  its sources, attachments and one enabled config written in one transaction, and `reload-plugins`
  published.
- `update`: an installed plugin's sources replaced (checked the same way) and its capabilities
  recorded, then `reload-plugins` published.
- `LogReader`: a config's entries of ClickHouse `plugin_log_entries`, oldest first.
  `ClickHouseLogReader` reads them through the ClickHouse adapter, or through anything that runs a
  read-only query into JSON lines the same way (the CLI's path to an embedded chDB, which only the
  server process may open, is the server's /query endpoint).

Each operation takes only what it uses, keyword-only, typed by the small Protocols below (the
Postgres and Redis adapters satisfy them, and so do the fakes of plugin_server/testing). What the
operator must fix is a `PluginAdminError` whose message says what.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from plugin_server.core.errors import PluginServerError
from plugin_server.storage.plugins import Attachment
from plugin_server.storage.teams import Team
from vm import config_schema
from vm.package import PackageError, PluginPackage, load_package

if TYPE_CHECKING:
    from plugin_server.storage.clickhouse import ClickHouse
    from plugin_server.storage.plugins import PluginStore
    from plugin_server.storage.redis import Redis
    from plugin_server.storage.teams import TeamStore

MAX_ATTACHMENT_BYTES = 10_000_000
# Read through `query_json` (JSON lines), the one path both an HTTP ClickHouse and the server's
# /query endpoint offer; the values formatted in are an int, a timestamp we format, and an int.
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
    """An install or update the operator must fix (bad folder, config, team, plugin id)."""


class PluginAdminStore(Protocol):
    """What plugin administration asks of the plugin store (storage/plugins.py, PluginStore)."""

    async def install(
        self,
        *,
        team_id: int,
        name: str,
        description: str,
        url: str,
        config_schema: Any,
        capabilities: dict[str, Any],
        sources: dict[str, str],
        config: dict[str, Any],
        order: int,
        attachments: Iterable[Attachment] = (),
    ) -> tuple[int, int]: ...

    async def plugin_exists(self, plugin_id: int) -> bool: ...

    async def update_sources(self, plugin_id: int, sources: dict[str, str]) -> None: ...

    async def set_capabilities(self, plugin_id: int, capabilities: dict[str, Any]) -> None: ...


class TeamLookup(Protocol):
    """What plugin administration asks of the team store (storage/teams.py, TeamStore)."""

    async def by_ids(self, team_ids: list[int]) -> list[Team]: ...


class Publisher(Protocol):
    """What the reload message needs of Redis (storage/redis.py, Redis)."""

    async def publish(self, channel: str, message: bytes | str) -> int: ...


class ReloadChannel:
    """The channel every running server's plugin runtime listens on (plugins/runtime.py)."""

    __slots__ = ("_channel", "_redis")

    def __init__(self, *, redis: Publisher, channel: str) -> None:
        self._redis = redis
        self._channel = channel

    async def publish(self) -> int:
        """Ask every server to reload its plugins; how many processes heard it."""
        return await self._redis.publish(self._channel, b"reload")


def read_package(path: Path) -> PluginPackage:
    try:
        return load_package(path)
    except PackageError as exc:
        raise PluginAdminError(f"{path}: {exc}") from None


def attachment(key: str, file_name: str, contents: bytes) -> Attachment:
    """One attachment of a config, at most MAX_ATTACHMENT_BYTES; JSON if its name says so."""
    _check_size(key, contents)
    content_type = "application/json" if Path(file_name).suffix == ".json" else "application/octet-stream"
    return Attachment(key, content_type, file_name, contents)


def _check_size(key: str, contents: bytes) -> None:
    if len(contents) > MAX_ATTACHMENT_BYTES:
        raise PluginAdminError(f"attachment {key!r}: larger than {MAX_ATTACHMENT_BYTES} bytes")


def check_config(package: PluginPackage, config: Mapping[str, str], attachments: Iterable[Attachment]) -> None:
    """The config and attachments against the plugin's schema (every problem at once)."""
    try:
        config_schema.validate(package.fields, config, attachments=frozenset(a.key for a in attachments))
    except config_schema.ConfigError as exc:
        raise PluginAdminError(f"config: {exc}") from None


async def install(
    package: PluginPackage,
    *,
    team_id: int,
    config: dict[str, str],
    order: int,
    attachments: list[Attachment],
    plugins: PluginAdminStore,
    teams: TeamLookup,
    reload: ReloadChannel,
) -> dict[str, Any]:
    """The plugin with one enabled config for `team_id`; what was installed, as the CLI prints it."""
    check_config(package, config, attachments)
    for a in attachments:  # `attachment` checked these, unless the caller built its own
        _check_size(a.key, a.contents)
    if not await teams.by_ids([team_id]):
        raise PluginAdminError(f"no team with id {team_id}")
    plugin_id, config_id = await plugins.install(
        team_id=team_id, name=package.name, description=package.description, url=package.url,
        config_schema=package.config_schema, capabilities=package.capabilities, sources=package.sources,
        config=config, order=order, attachments=attachments,
    )  # fmt: skip
    await reload.publish()
    return {
        "plugin_id": plugin_id,
        "plugin_config_id": config_id,
        "name": package.name,
        "capabilities": package.capabilities,
    }


async def update(
    package: PluginPackage, *, plugin_id: int, plugins: PluginAdminStore, reload: ReloadChannel
) -> dict[str, Any]:
    """The plugin's sources replaced; what was updated, as the CLI prints it."""
    if not await plugins.plugin_exists(plugin_id):
        raise PluginAdminError(f"no plugin with id {plugin_id}")
    await plugins.update_sources(plugin_id, package.sources)
    await plugins.set_capabilities(plugin_id, package.capabilities)
    await reload.publish()
    return {"plugin_id": plugin_id, "name": package.name, "capabilities": package.capabilities}


class LogReader(Protocol):
    """A config's plugin log entries, oldest first (the CLI prints each as a JSON line)."""

    async def read(self, *, config_id: int, since: dt.datetime | None, limit: int) -> list[dict[str, Any]]: ...


class JsonQuery(Protocol):
    """A read-only ClickHouse query into JSON lines (storage/clickhouse.py, ClickHouse.query_json)."""

    async def query_json(self, sql: str) -> bytes: ...


class ClickHouseLogReader:
    """`plugin_log_entries` through ClickHouse's `query_json`."""

    __slots__ = ("_clickhouse",)

    def __init__(self, *, clickhouse: JsonQuery) -> None:
        self._clickhouse = clickhouse

    async def read(self, *, config_id: int, since: dt.datetime | None, limit: int) -> list[dict[str, Any]]:
        start = (since or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        raw = await self._clickhouse.query_json(
            LOGS_SQL.format(config_id=int(config_id), since=start, limit=int(limit))
        )
        return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]


if TYPE_CHECKING:  # mypy checks that the real adapters satisfy these Protocols

    def _conforms(
        plugins: PluginStore, teams: TeamStore, redis: Redis, clickhouse: ClickHouse
    ) -> tuple[PluginAdminStore, TeamLookup, Publisher, JsonQuery]:
        return plugins, teams, redis, clickhouse
