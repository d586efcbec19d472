"""`meta.storage`: JSON values in Postgres (posthog_pluginstorage), per plugin config."""

from __future__ import annotations

import json
from typing import Any

from plugin_server.plugins.meta._bridge import Bridge, check_key, serialize
from plugin_server.storage.plugins import PluginStorageLike


class Storage:
    """Rows carry the config id: no config can name another's keys."""

    __slots__ = ("_bridge", "_config_id", "_store")

    def __init__(self, *, store: PluginStorageLike, config_id: int) -> None:
        self._store = store
        self._config_id = config_id
        self._bridge = Bridge("storage")

    def get(self, key: str, default: Any = None) -> Any:
        raw = self._bridge.run(self._store.storage_get, self._config_id, check_key(key))
        return default if raw is None else json.loads(raw)

    def set(self, key: str, value: Any) -> None:
        if value is None:  # PostHog: setting undefined deletes
            self.delete(key)
            return
        self._bridge.run(self._store.storage_set, self._config_id, check_key(key), serialize(value))

    def delete(self, key: str) -> None:
        self._bridge.run(self._store.storage_del, self._config_id, check_key(key))

    # PostHog's name for delete
    def del_(self, key: str) -> None:
        self.delete(key)
