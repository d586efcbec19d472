"""`meta.cache`: Redis, keys namespaced per plugin config (PostHog namespaced per plugin and team;
a config is the narrower boundary): every key starts with `@plugin-config/<id>/`."""

from __future__ import annotations

import json
from typing import Any, cast

from plugin_server.plugins.meta._bridge import (
    MAX_STORED_CHARS,
    Bridge,
    MetaError,
    check_key,
    plain,
    serialize,
)
from plugin_server.storage.redis import RedisCacheLike

MAX_LIST_PUSH = 1_000  # items in one cache.lpush (PostHog's limit)


class Cache:
    __slots__ = ("_bridge", "_prefix", "_redis")

    def __init__(self, *, redis: RedisCacheLike, config_id: int) -> None:
        self._redis = redis
        self._prefix = f"@plugin-config/{config_id}/"
        self._bridge = Bridge("cache")

    def _k(self, key: str) -> str:
        return self._prefix + check_key(key)

    def set(
        self,
        key: str,
        value: Any,
        ttl_seconds: float | None = None,
        json_serialize: bool = True,
    ) -> None:
        text = serialize(value) if json_serialize else _text(value)
        if len(text) > MAX_STORED_CHARS:
            raise MetaError(f"value is larger than {MAX_STORED_CHARS} characters")
        if ttl_seconds is not None and (not isinstance(ttl_seconds, int | float) or ttl_seconds <= 0):
            raise MetaError("ttl_seconds must be a positive number")
        self._bridge.run(self._redis.set, self._k(key), text.encode(), ttl_seconds=ttl_seconds)

    def get(self, key: str, default: Any = None, json_serialize: bool = True) -> Any:
        raw = self._bridge.run(self._redis.get, self._k(key))
        if raw is None:
            return default
        text = raw.decode("utf-8", errors="replace")
        return json.loads(text) if json_serialize else text

    def incr(self, key: str) -> int:
        return cast(int, self._bridge.run(self._redis.command, "incr", self._k(key)))

    def expire(self, key: str, ttl_seconds: float) -> bool:
        return bool(
            self._bridge.run(
                self._redis.command,
                "pexpire",
                self._k(key),
                int(float(ttl_seconds) * 1000),
            )
        )

    def lpush(self, key: str, elements: Any) -> int:
        items = elements if isinstance(elements, list) else [elements]
        if len(items) > MAX_LIST_PUSH:
            raise MetaError(f"at most {MAX_LIST_PUSH} elements per lpush")
        texts = [e if isinstance(e, str) else serialize(e) for e in items]
        return cast(int, self._bridge.run(self._redis.command, "lpush", self._k(key), *texts))

    def lrange(self, key: str, start: int, end: int) -> list[str]:
        if not isinstance(start, int) or not isinstance(end, int):
            raise MetaError("lrange needs integer start and end")
        raw = self._bridge.run(self._redis.command, "lrange", self._k(key), start, end)
        return [r.decode("utf-8", errors="replace") for r in raw]

    def llen(self, key: str) -> int:
        return cast(int, self._bridge.run(self._redis.command, "llen", self._k(key)))

    def lpop(self, key: str, count: int = 1) -> list[str]:
        raw = self._bridge.run(self._redis.command, "lpop", self._k(key), int(count))
        return [r.decode("utf-8", errors="replace") for r in raw or []]

    def lrem(self, key: str, count: int, element: str) -> int:
        text = element if isinstance(element, str) else serialize(element)
        return cast(int, self._bridge.run(self._redis.command, "lrem", self._k(key), int(count), text))


def _text(value: Any) -> str:
    """`str(value)` for `json_serialize=False`, of a copy: the host's str() of a self-similar
    structure expands it in one C call (`plain` refuses it, and a cycle, before), and str() of exact
    builtin types runs nothing of the plugin's."""
    if isinstance(value, str):
        return str.__str__(value)
    return str(plain(value, limit=MAX_STORED_CHARS))
