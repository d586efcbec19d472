"""An in-memory stand-in for `plugin_server.storage.redis.Redis`, as far as its users go.

It covers the three Protocols of storage/redis.py: batched keys with a time to live (the shared
person-state cache), strings plus the commands `meta.cache` sends (incr, pexpire, lpush, lrange,
llen, lpop, lrem), and the reload channel (publish, subscribe). It answers as Redis 6.2 through
redis-py does, errors included: a string command on a list is WRONGTYPE, arguments are checked as
Redis parses them, and every refusal is the adapter's `StorageError`. Any other command is refused
as unknown, loudly, rather than imitated. `unavailable = True` makes every call fail as an
unreachable Redis does (`ServiceUnavailable`). Times to live run on trio's clock, so tests with
`autojump_clock` expire keys without waiting. tests/contract/test_redis_contract.py runs the same
cases against both.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio

from plugin_server.core.errors import ServiceUnavailable, StorageError

if TYPE_CHECKING:
    from plugin_server.storage.redis import Redis, RedisKeysLike, RedisPluginsLike

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_INTEGER = re.compile(rb"0|-?[1-9][0-9]{0,19}")  # Redis' string2ll: no sign +, no spaces, no leading 0
WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
NOT_AN_INTEGER = "value is not an integer or out of range"


class _Refused(Exception):
    """Redis' error reply to a command; the adapter makes it a StorageError."""


def _encode(value: Any) -> bytes:
    """An argument as redis-py sends it."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        try:
            return value.encode("utf-8")  # strict, as redis-py
        except UnicodeEncodeError as exc:  # a lone surrogate: the adapter refuses the data
            raise StorageError("redis", str(exc)) from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value).encode()
    # redis-py's DataError: the adapter refuses the data (not an outage)
    raise StorageError("redis", f"Invalid input of type: {type(value).__name__!r}")


def _integer(raw: bytes, error: str = NOT_AN_INTEGER) -> int:
    if not _INTEGER.fullmatch(raw) or not INT64_MIN <= int(raw) <= INT64_MAX:
        raise _Refused(error)
    return int(raw)


class InMemoryRedis:
    def __init__(self) -> None:
        self._data: dict[str, bytes | list[bytes]] = {}  # a list's head is index 0
        self._expires: dict[str, float] = {}  # key -> trio.current_time() it expires at
        self._channels: dict[str, list[trio.MemorySendChannel[bytes]]] = {}
        self.unavailable = False
        self.calls: list[str] = []  # one per round trip

    def _call(self, what: str) -> None:
        self.calls.append(what)
        if self.unavailable:
            raise ServiceUnavailable("redis", f"{what}: ConnectionError('Error connecting to Redis')")

    def _live(self, key: str) -> bytes | list[bytes] | None:
        expires = self._expires.get(key)
        if expires is not None and trio.current_time() >= expires:
            del self._data[key], self._expires[key]
        return self._data.get(key)

    def _put(self, key: str, value: bytes, px: int | None) -> None:
        self._data[key] = value
        self._expires.pop(key, None)
        if px is not None:
            self._expires[key] = trio.current_time() + px / 1000

    def _remove(self, key: str) -> bool:
        self._expires.pop(key, None)
        return self._data.pop(key, None) is not None

    # -- keys (RedisKeysLike, and get/set of RedisCacheLike) ------------------------------------

    async def ping(self) -> bool:
        self._call("ping")
        await trio.lowlevel.checkpoint()
        return True

    async def get(self, key: str) -> bytes | None:
        self._call("get")
        await trio.lowlevel.checkpoint()
        value = self._live(key)
        if isinstance(value, list):
            raise StorageError("redis", f"get: {WRONGTYPE}")
        return value

    async def set(self, key: str, value: bytes | str, *, ttl_seconds: float | None = None) -> None:
        self._call("set")
        await trio.lowlevel.checkpoint()
        px = int(ttl_seconds * 1000) if ttl_seconds is not None else None
        if px is not None and px <= 0:
            raise StorageError("redis", "set: invalid expire time in set")
        self._put(key, _encode(value), px)

    async def delete(self, *keys: str) -> int:
        self._call("delete")
        await trio.lowlevel.checkpoint()
        if not keys:
            raise StorageError("redis", "delete: wrong number of arguments for 'del' command")
        return sum(self._live(key) is not None and self._remove(key) for key in keys)

    async def mget(self, keys: list[str]) -> list[bytes | None]:
        if not keys:
            return []
        self._call("mget")
        await trio.lowlevel.checkpoint()
        values = [self._live(key) for key in keys]
        return [v if isinstance(v, bytes) else None for v in values]

    async def set_many(self, items: dict[str, bytes], *, ttl_seconds: float) -> None:
        if not items:
            return
        self._call("set_many")
        await trio.lowlevel.checkpoint()
        px = int(ttl_seconds * 1000)
        if px <= 0:
            raise StorageError("redis", "set_many: invalid expire time in set")
        for key, value in items.items():
            self._put(key, _encode(value), px)

    async def flushdb(self) -> None:
        self._call("flushdb")
        await trio.lowlevel.checkpoint()
        self._data.clear()
        self._expires.clear()

    # -- meta.cache's other commands (RedisCacheLike.command) -----------------------------------

    async def command(self, name: str, *args: Any) -> Any:
        self._call(name)
        await trio.lowlevel.checkpoint()
        raw = [_encode(a) for a in args]
        spec = _COMMANDS.get(name.lower())
        if spec is None:
            shown = ", ".join(f"`{a.decode(errors='replace')}`" for a in raw[:1])
            raise StorageError("redis", f"{name}: unknown command `{name.upper()}`, with args beginning with: {shown}")
        fewest, most, run = spec
        if not fewest <= len(raw) <= most:
            raise StorageError("redis", f"{name}: wrong number of arguments for '{name.lower()}' command")
        try:
            return run(self, *raw)
        except _Refused as exc:
            raise StorageError("redis", f"{name}: {exc}") from None

    def _list(self, key: bytes) -> list[bytes] | None:
        value = self._live(key.decode())
        if isinstance(value, bytes):
            raise _Refused(WRONGTYPE)
        return value

    def _incr(self, key: bytes) -> int:
        current = self._live(key.decode())
        if isinstance(current, list):
            raise _Refused(WRONGTYPE)
        value = (0 if current is None else _integer(current)) + 1
        if value > INT64_MAX:
            raise _Refused("increment or decrement would overflow")
        self._data[key.decode()] = str(value).encode()  # keeps its time to live, as INCR does
        return value

    def _pexpire(self, key: bytes, milliseconds: bytes) -> bool:
        ms = _integer(milliseconds)
        if self._live(key.decode()) is None:
            return False
        if ms <= 0:
            self._remove(key.decode())
        else:
            self._expires[key.decode()] = trio.current_time() + ms / 1000
        return True

    def _lpush(self, key: bytes, *elements: bytes) -> int:
        items = self._list(key)
        if items is None:
            items = self._data[key.decode()] = []
        for element in elements:
            items.insert(0, element)
        return len(items)

    def _lrange(self, key: bytes, start: bytes, stop: bytes) -> list[bytes]:
        first, last = _integer(start), _integer(stop)
        items = self._list(key) or []
        size = len(items)
        first, last = (first + size if first < 0 else first), (last + size if last < 0 else last)
        first = max(first, 0)
        if first > last or first >= size:
            return []
        return items[first : min(last, size - 1) + 1]

    def _llen(self, key: bytes) -> int:
        return len(self._list(key) or [])

    def _lpop(self, key: bytes, count: bytes | None = None) -> bytes | list[bytes] | None:
        wanted = None if count is None else _integer(count, "value is out of range, must be positive")
        if wanted is not None and wanted < 0:
            raise _Refused("value is out of range, must be positive")
        items = self._list(key)
        if items is None:
            return None
        popped, items[:] = items[: 1 if wanted is None else wanted], items[1 if wanted is None else wanted :]
        if not items:
            self._remove(key.decode())
        return popped[0] if wanted is None else popped

    def _lrem(self, key: bytes, count: bytes, element: bytes) -> int:
        limit = _integer(count)
        items = self._list(key)
        if items is None:
            return 0
        positions = [i for i, item in enumerate(items) if item == element]
        if limit < 0:
            positions = positions[::-1][:-limit]
        elif limit > 0:
            positions = positions[:limit]
        for i in sorted(positions, reverse=True):
            del items[i]
        if not items:
            self._remove(key.decode())
        return len(positions)

    # -- the reload channel (RedisPluginsLike.subscribe) ----------------------------------------

    async def publish(self, channel: str, message: bytes | str) -> int:
        self._call("publish")
        await trio.lowlevel.checkpoint()
        receivers = self._channels.get(channel, [])
        for send in receivers:
            send.send_nowait(_encode(message))
        return len(receivers)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[InMemorySubscription]:
        self._call("subscribe")
        await trio.lowlevel.checkpoint()
        send, receive = trio.open_memory_channel[bytes](math.inf)  # Redis buffers per client
        self._channels.setdefault(channel, []).append(send)
        try:
            yield InMemorySubscription(self, receive)
        finally:
            self._channels[channel].remove(send)


class InMemorySubscription:
    def __init__(self, redis: InMemoryRedis, receive: trio.MemoryReceiveChannel[bytes]) -> None:
        self._redis = redis
        self._receive = receive

    async def next_message(self, *, timeout: float) -> bytes | None:
        """The next message, or None if none came within `timeout` seconds. (The real one may
        also answer None early, for the subscription's own confirmation: callers loop.)"""
        self._redis._call("subscription")
        with trio.move_on_after(timeout):
            return await self._receive.receive()
        return None


_MANY = 2**31  # arguments: no limit in practice
# name -> (fewest arguments, most arguments, implementation)
_COMMANDS: dict[str, tuple[int, int, Callable[..., Any]]] = {
    "incr": (1, 1, InMemoryRedis._incr),
    "pexpire": (2, 2, InMemoryRedis._pexpire),
    "lpush": (2, _MANY, InMemoryRedis._lpush),
    "lrange": (3, 3, InMemoryRedis._lrange),
    "llen": (1, 1, InMemoryRedis._llen),
    "lpop": (1, 2, InMemoryRedis._lpop),
    "lrem": (3, 3, InMemoryRedis._lrem),
}


if TYPE_CHECKING:  # mypy checks that the fake and the real adapter both satisfy the Protocols

    def _conforms(fake: InMemoryRedis, real: Redis) -> list[RedisKeysLike | RedisPluginsLike]:
        keys: list[RedisKeysLike] = [fake, real]
        plugins: list[RedisPluginsLike] = [fake, real]
        return [*keys, *plugins]
