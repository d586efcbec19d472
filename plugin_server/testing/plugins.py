"""An in-memory stand-in for `plugin_server.storage.plugins.PluginStore`.

It keeps what the real store reads and writes (plugins with their sources, configs with their
error and attachments, and plugin storage) and answers as Postgres does: configs in (team, order,
id) order with a revision that changes when the config is disabled or the plugin's sources are
updated (not when its capabilities are), storage values as text with the foreign key to their
config, counters that refuse a value that is not a bigint, and over-long or NUL-holding text
refused (`StorageError`). Every call is one checkpoint, as one round trip is, and each is atomic,
as each is one statement or transaction in Postgres. tests/contract/test_plugin_store_contract.py
runs the same cases against both.

Not modelled: organizations (every enabled config is active), the team foreign key, log levels.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from plugin_server.storage.plugins import Attachment, ConfigRow
from plugin_server.testing import postgres_values as pgv

if TYPE_CHECKING:
    from plugin_server.storage.plugins import PluginStore, PluginStoreLike

NAME_CHARS = 200  # posthog_plugin.name, posthog_pluginsourcefile.filename, attachment columns
URL_CHARS = 800  # posthog_plugin.url
STORAGE_KEY_CHARS = 200  # posthog_pluginstorage.key


@dataclass
class _Plugin:
    id: int
    name: str
    description: str
    url: str
    config_schema: Any
    capabilities: dict[str, Any]
    sources: dict[str, str]
    updated_at: dt.datetime


@dataclass
class _Config:
    id: int
    team_id: int
    plugin_id: int
    enabled: bool
    order: int
    config: dict[str, Any]
    updated_at: dt.datetime
    error: dict[str, Any] | None = None
    attachments: list[Attachment] = field(default_factory=list)


class InMemoryPluginStore:
    def __init__(self) -> None:
        self.plugins: dict[int, _Plugin] = {}
        self.configs: dict[int, _Config] = {}
        self.storage: dict[tuple[int, str], str] = {}  # (config id, key) -> value
        self.calls: list[str] = []  # method names, one per round trip
        self._plugin_ids = itertools.count(1)
        self._config_ids = itertools.count(1)
        self._clock = pgv.Clock()

    async def _round_trip(self, method: str) -> None:
        self.calls.append(method)
        await trio.lowlevel.checkpoint()  # other tasks run meanwhile, as during a query

    async def active_configs(self) -> list[ConfigRow]:
        await self._round_trip("active_configs")
        active = sorted((c for c in self.configs.values() if c.enabled), key=lambda c: (c.team_id, c.order, c.id))
        return [self._row(c, self.plugins[c.plugin_id]) for c in active]

    @staticmethod
    def _row(config: _Config, plugin: _Plugin) -> ConfigRow:
        return ConfigRow(
            config_id=config.id,
            team_id=config.team_id,
            order=config.order,
            config=dict(pgv.jsonb(config.config) or {}),
            plugin_id=plugin.id,
            plugin_name=plugin.name or f"plugin-{plugin.id}",
            config_schema=pgv.jsonb(plugin.config_schema),
            sources=dict(plugin.sources),
            attachments={a.key: a for a in config.attachments},
            log_level=None,
            revision=(config.updated_at, plugin.updated_at),
        )

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
        await self._round_trip("install")
        # everything is checked before anything is kept: one transaction
        now = self._clock.now()
        plugin = _Plugin(
            id=0, name=pgv.text(name, limit=NAME_CHARS), description=pgv.text(description),
            url=pgv.text(url, limit=URL_CHARS), config_schema=pgv.jsonb(config_schema),
            capabilities=pgv.jsonb(capabilities), sources=_sources(sources), updated_at=now,
        )  # fmt: skip
        written = _Config(
            0, team_id, 0, True, order, pgv.jsonb(config), now, None, [_attachment(a) for a in attachments]
        )
        plugin.id = written.plugin_id = next(self._plugin_ids)
        written.id = next(self._config_ids)
        self.plugins[plugin.id], self.configs[written.id] = plugin, written
        return plugin.id, written.id

    async def update_sources(self, plugin_id: int, sources: dict[str, str]) -> None:
        await self._round_trip("update_sources")
        written = _sources(sources)
        plugin = self.plugins.get(plugin_id)
        if plugin is None:
            if written:  # a source row needs its plugin; touching no plugin is no error
                raise pgv.foreign_key("posthog_pluginsourcefile", "plugin_id", plugin_id)
            return
        plugin.sources.update(written)
        plugin.updated_at = self._clock.now()

    async def plugin_exists(self, plugin_id: int) -> bool:
        await self._round_trip("plugin_exists")
        return plugin_id in self.plugins

    async def set_capabilities(self, plugin_id: int, capabilities: dict[str, Any]) -> None:
        await self._round_trip("set_capabilities")
        written = pgv.jsonb(capabilities)
        if plugin_id in self.plugins:  # updated_at stays: capabilities do not make a new revision
            self.plugins[plugin_id].capabilities = written

    async def set_error(self, config_id: int, error: dict[str, Any] | None) -> None:
        await self._round_trip("set_error")
        written = None if error is None else pgv.jsonb(error)
        if config_id in self.configs:
            self.configs[config_id].error = written

    async def error_of(self, config_id: int) -> dict[str, Any] | None:
        await self._round_trip("error_of")
        config = self.configs.get(config_id)
        return None if config is None or config.error is None else pgv.jsonb(config.error)

    async def disable(self, config_id: int) -> bool:
        await self._round_trip("disable")
        config = self.configs.get(config_id)
        if config is None or not config.enabled:
            return False
        config.enabled, config.updated_at = False, self._clock.now()
        return True

    async def storage_get(self, config_id: int, key: str) -> str | None:
        await self._round_trip("storage_get")
        return self.storage.get((config_id, pgv.text(key)))

    async def storage_set(self, config_id: int, key: str, value: str) -> None:
        await self._round_trip("storage_set")
        self.storage[self._new_key(config_id, key)] = pgv.text(value)

    async def storage_del(self, config_id: int, key: str) -> None:
        await self._round_trip("storage_del")
        self.storage.pop((config_id, pgv.text(key)), None)

    async def storage_init(self, config_id: int, key: str, initial: int) -> None:
        await self._round_trip("storage_init")
        self.storage.setdefault(self._new_key(config_id, key), str(initial))

    async def storage_increment(self, config_id: int, key: str, by: int) -> int:
        await self._round_trip("storage_increment")
        storage_key = self._new_key(config_id, key)
        current = self.storage.get(storage_key)
        value = pgv.bigint_from_text(str(by)) if current is None else pgv.bigint_from_text(current) + pgv.bigint(by)
        self.storage[storage_key] = str(pgv.bigint(value))
        return value

    def _new_key(self, config_id: int, key: str) -> tuple[int, str]:
        """The key of a row that may be inserted: varchar(200), and its config must exist."""
        storage_key = (config_id, pgv.text(key, limit=STORAGE_KEY_CHARS))
        if storage_key not in self.storage and config_id not in self.configs:
            raise pgv.foreign_key("posthog_pluginstorage", "plugin_config_id", config_id)
        return storage_key


def _attachment(a: Attachment) -> Attachment:
    text = [pgv.text(t, limit=NAME_CHARS) for t in (a.key, a.content_type, a.file_name)]
    return Attachment(text[0], text[1], text[2], bytes(a.contents))


def _sources(sources: dict[str, str]) -> dict[str, str]:
    return {pgv.text(filename, limit=NAME_CHARS): pgv.text(source) for filename, source in sources.items()}


if TYPE_CHECKING:  # mypy checks that the fake and the real store both satisfy the Protocol

    def _conforms(fake: InMemoryPluginStore, real: PluginStore) -> list[PluginStoreLike]:
        return [fake, real]
