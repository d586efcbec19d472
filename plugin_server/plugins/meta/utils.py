"""`meta.utils`: `cursor`, atomic counters kept in storage (posthog_pluginstorage)."""

from __future__ import annotations

from typing import cast

from plugin_server.plugins.meta._bridge import Bridge, check_key
from plugin_server.storage.plugins import PluginStorageLike


class Cursor:
    """`meta.utils.cursor`: counters in the config's own storage rows."""

    __slots__ = ("_bridge", "_config_id", "_store")

    def __init__(self, *, store: PluginStorageLike, config_id: int) -> None:
        self._store = store
        self._config_id = config_id
        self._bridge = Bridge("cursor")

    def init(self, key: str, initial: int = 0) -> None:
        self._bridge.run(self._store.storage_init, self._config_id, check_key(key), int(initial))

    def increment(self, key: str, by: int = 1) -> int:
        return cast(int, self._bridge.run(self._store.storage_increment, self._config_id, check_key(key), int(by)))


class Utils:
    __slots__ = ("cursor",)

    def __init__(self, *, cursor: Cursor) -> None:
        self.cursor = cursor
