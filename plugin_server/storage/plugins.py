"""Plugins in Postgres (posthog_plugin, posthog_pluginconfig, posthog_pluginsourcefile,
posthog_pluginattachment, posthog_pluginstorage): what runs for which team, and plugin storage.

A thin adapter: the plugin host (plugin_server/plugins/) decides what the rows mean. Which configs are active follows
PostHog (REFERENCE.md 6.2): enabled, and the team's organization (if it has one) allows plugins.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg

from plugin_server.storage.postgres import Postgres

ACTIVE_CONFIGS = """
SELECT c.id AS config_id, c.team_id, c."order", c.config, c.updated_at AS config_updated_at,
    p.id AS plugin_id, p.name, p.config_schema, p.updated_at AS plugin_updated_at, p.log_level
FROM posthog_pluginconfig c
JOIN posthog_plugin p ON p.id = c.plugin_id
JOIN posthog_team t ON t.id = c.team_id
LEFT JOIN posthog_organization o ON o.id = t.organization_id
WHERE c.enabled AND (o.id IS NULL OR o.plugins_access_level > 0)
    AND (p.organization_id IS NULL OR p.is_global OR p.organization_id = t.organization_id)
ORDER BY c.team_id, c."order", c.id"""

SOURCES_OF = """
SELECT plugin_id, filename, source FROM posthog_pluginsourcefile
WHERE plugin_id = ANY($1::int[]) AND source IS NOT NULL"""

ATTACHMENTS_OF = """
SELECT plugin_config_id, key, content_type, file_name, contents FROM posthog_pluginattachment
WHERE plugin_config_id = ANY($1::int[])"""

INSERT_PLUGIN = """
INSERT INTO posthog_plugin (plugin_type, name, description, url, config_schema, capabilities, from_json)
VALUES ('source', $1, $2, $3, $4, $5, true) RETURNING id"""

UPSERT_SOURCE = """
INSERT INTO posthog_pluginsourcefile (plugin_id, filename, source, status, updated_at)
VALUES ($1, $2, $3, NULL, now())
ON CONFLICT ON CONSTRAINT unique_filename_for_plugin DO UPDATE SET source = EXCLUDED.source, updated_at = now()"""

TOUCH_PLUGIN = "UPDATE posthog_plugin SET updated_at = now() WHERE id = $1"
PLUGIN_EXISTS = "SELECT EXISTS (SELECT 1 FROM posthog_plugin WHERE id = $1)"

INSERT_CONFIG = """
INSERT INTO posthog_pluginconfig (team_id, plugin_id, enabled, "order", config)
VALUES ($1, $2, $3, $4, $5) RETURNING id"""

INSERT_ATTACHMENT = """
INSERT INTO posthog_pluginattachment (team_id, plugin_config_id, key, content_type, file_name, file_size, contents)
VALUES ($1, $2, $3, $4, $5, $6, $7)"""

SET_CAPABILITIES = """
UPDATE posthog_plugin SET capabilities = $2 WHERE id = $1 AND capabilities IS DISTINCT FROM $2"""

SET_ERROR = "UPDATE posthog_pluginconfig SET error = $2 WHERE id = $1"
CLEAR_ERROR = "UPDATE posthog_pluginconfig SET error = NULL WHERE id = $1 AND error IS NOT NULL"
DISABLE = "UPDATE posthog_pluginconfig SET enabled = false, updated_at = now() WHERE id = $1 AND enabled"
ERROR_OF = "SELECT error FROM posthog_pluginconfig WHERE id = $1"

STORAGE_GET = "SELECT value FROM posthog_pluginstorage WHERE plugin_config_id = $1 AND key = $2"
STORAGE_SET = """
INSERT INTO posthog_pluginstorage (plugin_config_id, key, value) VALUES ($1, $2, $3)
ON CONFLICT ON CONSTRAINT posthog_unique_plugin_storage_key DO UPDATE SET value = EXCLUDED.value"""
STORAGE_DEL = "DELETE FROM posthog_pluginstorage WHERE plugin_config_id = $1 AND key = $2"
# utils.cursor (REFERENCE.md 6.9): an atomic counter in storage.
STORAGE_INCREMENT = """
INSERT INTO posthog_pluginstorage (plugin_config_id, key, value) VALUES ($1, $2, $3::text)
ON CONFLICT ON CONSTRAINT posthog_unique_plugin_storage_key
DO UPDATE SET value = ((posthog_pluginstorage.value)::bigint + $3::bigint)::text
RETURNING value::bigint"""
STORAGE_INIT = """
INSERT INTO posthog_pluginstorage (plugin_config_id, key, value) VALUES ($1, $2, $3::text)
ON CONFLICT ON CONSTRAINT posthog_unique_plugin_storage_key DO NOTHING"""


@dataclass(frozen=True)
class Attachment:
    key: str
    content_type: str
    file_name: str
    contents: bytes


@dataclass(frozen=True)
class ConfigRow:
    """One active plugin config with everything needed to load it."""

    config_id: int
    team_id: int
    order: int
    config: dict[str, Any]
    plugin_id: int
    plugin_name: str
    config_schema: Any
    sources: dict[str, str]
    attachments: dict[str, Attachment] = field(default_factory=dict)
    log_level: int | None = None
    # Changes to either mean the loaded VM is outdated (REFERENCE.md 6.4, reload).
    revision: tuple[dt.datetime, dt.datetime] | None = None


class PluginStorageLike(Protocol):
    """What plugins' `meta.storage` and `meta.utils.cursor` (plugin_server/plugins/meta/storage.py, utils.py) ask of
    the plugin store: values per plugin config."""

    async def storage_get(self, config_id: int, key: str) -> str | None: ...

    async def storage_set(self, config_id: int, key: str, value: str) -> None: ...

    async def storage_del(self, config_id: int, key: str) -> None: ...

    async def storage_init(self, config_id: int, key: str, initial: int) -> None: ...

    async def storage_increment(self, config_id: int, key: str, by: int) -> int: ...


class PluginStoreLike(PluginStorageLike, Protocol):
    """What the plugin runtime (plugin_server/plugins/runtime.py) asks of the plugin store: the
    active configs, its bookkeeping, and the storage it hands to each config's `meta`.

    `PluginStore` below is the truth (Postgres); `plugin_server.testing.plugins.InMemoryPluginStore`
    is its fake, and tests/contract/test_plugin_store_contract.py holds both to the same behaviour.
    """

    async def active_configs(self) -> list[ConfigRow]: ...

    async def set_capabilities(self, plugin_id: int, capabilities: dict[str, Any]) -> None: ...

    async def set_error(self, config_id: int, error: dict[str, Any] | None) -> None: ...

    async def disable(self, config_id: int) -> bool: ...


class PluginStore:
    def __init__(self, *, pg: Postgres) -> None:
        self._pg = pg

    async def active_configs(self) -> list[ConfigRow]:
        """Every active config, by team and `order`, with its plugin's sources and attachments
        (three queries, whatever the number of configs)."""
        rows = await self._pg.fetch(ACTIVE_CONFIGS)
        if not rows:
            return []
        sources: dict[int, dict[str, str]] = {}
        for r in await self._pg.fetch(SOURCES_OF, sorted({r["plugin_id"] for r in rows})):
            sources.setdefault(r["plugin_id"], {})[r["filename"]] = r["source"]
        attachments: dict[int, dict[str, Attachment]] = {}
        for r in await self._pg.fetch(ATTACHMENTS_OF, [r["config_id"] for r in rows]):
            attachments.setdefault(r["plugin_config_id"], {})[r["key"]] = Attachment(
                r["key"], r["content_type"], r["file_name"], bytes(r["contents"])
            )
        return [
            ConfigRow(
                config_id=r["config_id"],
                team_id=r["team_id"],
                order=r["order"],
                config=dict(r["config"] or {}),
                plugin_id=r["plugin_id"],
                plugin_name=r["name"] or f"plugin-{r['plugin_id']}",
                config_schema=r["config_schema"],
                sources=sources.get(r["plugin_id"], {}),
                attachments=attachments.get(r["config_id"], {}),
                log_level=r["log_level"],
                revision=(r["config_updated_at"], r["plugin_updated_at"]),
            )
            for r in rows
        ]

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
    ) -> tuple[int, int]:
        """A plugin with its sources and one enabled config for `team_id`, in one transaction.
        Returns (plugin id, config id)."""

        async def install(conn: asyncpg.Connection) -> tuple[int, int]:
            plugin_id = await conn.fetchval(INSERT_PLUGIN, name, description, url, config_schema, capabilities)
            for filename, source in sources.items():
                await conn.execute(UPSERT_SOURCE, plugin_id, filename, source)
            config_id = await conn.fetchval(INSERT_CONFIG, team_id, plugin_id, True, order, config)
            for a in attachments:
                await conn.execute(
                    INSERT_ATTACHMENT,
                    team_id,
                    config_id,
                    a.key,
                    a.content_type,
                    a.file_name,
                    len(a.contents),
                    a.contents,
                )
            return plugin_id, config_id

        return await self._pg.run_in_transaction(install)

    async def update_sources(self, plugin_id: int, sources: dict[str, str]) -> None:
        """Replace source files and mark the plugin changed, so a reload picks it up."""

        async def update(conn: asyncpg.Connection) -> None:
            for filename, source in sources.items():
                await conn.execute(UPSERT_SOURCE, plugin_id, filename, source)
            await conn.execute(TOUCH_PLUGIN, plugin_id)

        await self._pg.run_in_transaction(update)

    async def plugin_exists(self, plugin_id: int) -> bool:
        return bool(await self._pg.fetchval(PLUGIN_EXISTS, plugin_id))

    async def set_capabilities(self, plugin_id: int, capabilities: dict[str, Any]) -> None:
        await self._pg.execute(SET_CAPABILITIES, plugin_id, capabilities)

    async def set_error(self, config_id: int, error: dict[str, Any] | None) -> None:
        """PostHog's `error` column: {message, time, name?, stack?, event?}; None clears it."""
        if error is None:
            await self._pg.execute(CLEAR_ERROR, config_id)
        else:
            await self._pg.execute(SET_ERROR, config_id, error)

    async def error_of(self, config_id: int) -> dict[str, Any] | None:
        error: dict[str, Any] | None = await self._pg.fetchval(ERROR_OF, config_id)
        return error

    async def disable(self, config_id: int) -> bool:
        """Disable a config (too many setup failures, a stuck call); True if this call did."""
        return (await self._pg.execute(DISABLE, config_id)).endswith(" 1")

    async def storage_get(self, config_id: int, key: str) -> str | None:
        value: str | None = await self._pg.fetchval(STORAGE_GET, config_id, key)
        return value

    async def storage_set(self, config_id: int, key: str, value: str) -> None:
        await self._pg.execute(STORAGE_SET, config_id, key, value)

    async def storage_del(self, config_id: int, key: str) -> None:
        await self._pg.execute(STORAGE_DEL, config_id, key)

    async def storage_init(self, config_id: int, key: str, initial: int) -> None:
        await self._pg.execute(STORAGE_INIT, config_id, key, str(initial))

    async def storage_increment(self, config_id: int, key: str, by: int) -> int:
        value: int = await self._pg.fetchval(STORAGE_INCREMENT, config_id, key, str(by))
        return value
