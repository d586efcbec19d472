"""Redis adapter: redis.asyncio behind a trio interface.

The server uses it as the shared person-state cache (plugin_server/ingestion/person_cache.py);
plugins' caches and pub/sub come later. redis' errors are translated into ours here and nowhere
else.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import redis.asyncio
import redis.exceptions
import trio
from trio_asyncio import aio_as_trio

from plugin_server.core.errors import ServiceUnavailable, StorageError

SOCKET_TIMEOUT_SECONDS = 5.0


def _translate(exc: BaseException, what: str) -> Exception:
    # Refused by Redis, or arguments redis-py cannot send (a bool: DataError; a lone surrogate:
    # UnicodeEncodeError): the data is wrong, not the service, so retrying would not help.
    if isinstance(exc, redis.exceptions.ResponseError | redis.exceptions.DataError | UnicodeError):
        return StorageError("redis", f"{what}: {exc}")
    return ServiceUnavailable("redis", f"{what}: {exc!r}")


_TRANSLATED = (redis.exceptions.RedisError, OSError, asyncio.TimeoutError, UnicodeError)


class RedisKeysLike(Protocol):
    """What the shared person-state cache (plugin_server/ingestion/person_cache.py) asks of
    Redis: string keys with a time to live, read and written in batches."""

    async def mget(self, keys: list[str]) -> list[bytes | None]: ...

    async def set_many(self, items: dict[str, bytes], *, ttl_seconds: float) -> None: ...

    async def delete(self, *keys: str) -> int: ...


class RedisCacheLike(Protocol):
    """What plugins' `meta.cache` (plugin_server/plugins/meta/cache.py) asks of Redis: strings with an
    optional time to live, and the few other commands it sends (incr, pexpire, lpush, lrange,
    llen, lpop, lrem) answered as redis-py answers them."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes | str, *, ttl_seconds: float | None = None) -> None: ...

    async def command(self, name: str, *args: Any) -> Any: ...


class SubscriptionLike(Protocol):
    """One channel's messages. `next_message` may answer None before `timeout` (redis-py hands
    over the subscription's own confirmation that way): None means "nothing yet", so callers loop."""

    async def next_message(self, *, timeout: float) -> bytes | None: ...


class RedisPluginsLike(RedisCacheLike, Protocol):
    """What the plugin runtime (plugin_server/plugins/runtime.py) asks of Redis: `meta.cache` for
    every config, and the reload channel.

    `Redis` below is the real adapter; `plugin_server.testing.redis.InMemoryRedis` is the fake of
    all of them, and tests/contract/test_redis_contract.py holds both to the same behaviour.
    """

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[SubscriptionLike]: ...


class Redis:
    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._client = client

    async def _call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return await aio_as_trio(getattr(self._client, method))(*args, **kwargs)
        except _TRANSLATED as exc:
            raise _translate(exc, what) from exc

    async def ping(self) -> bool:
        return bool(await self._call("ping", "ping"))

    async def get(self, key: str) -> bytes | None:
        # The client is made without decode_responses: values come back as bytes.
        value: bytes | None = await self._call("get", "get", key)
        return value

    async def set(self, key: str, value: bytes | str, *, ttl_seconds: float | None = None) -> None:
        px = int(ttl_seconds * 1000) if ttl_seconds is not None else None
        await self._call("set", "set", key, value, px=px)

    async def delete(self, *keys: str) -> int:
        return int(await self._call("delete", "delete", *keys))

    async def command(self, name: str, *args: Any) -> Any:
        """Any other command, as redis-py's execute_command answers it (plugins' meta.cache)."""
        return await self._call(name, "execute_command", name.upper(), *args)

    async def mget(self, keys: list[str]) -> list[bytes | None]:
        """Values of `keys`, in order (None where missing); one round trip."""
        if not keys:
            return []
        values: list[bytes | None] = await self._call("mget", "mget", keys)
        return values

    async def set_many(self, items: dict[str, bytes], *, ttl_seconds: float) -> None:
        """Set every key with the same time to live, in one pipelined round trip (not atomic)."""
        if not items:
            return
        px = int(ttl_seconds * 1000)

        async def run() -> None:
            async with self._client.pipeline(transaction=False) as pipe:
                for key, value in items.items():
                    pipe.set(key, value, px=px)
                await pipe.execute()

        try:
            await aio_as_trio(run)()
        except _TRANSLATED as exc:
            raise _translate(exc, "set_many") from exc

    async def publish(self, channel: str, message: bytes | str) -> int:
        return int(await self._call("publish", "publish", channel, message))

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscription]:
        """Subscribed to `channel` for the block (its own connection, as pub/sub needs)."""
        pubsub = self._client.pubsub()
        try:
            await aio_as_trio(pubsub.subscribe)(channel)
        except _TRANSLATED as exc:
            raise _translate(exc, "subscribe") from exc
        try:
            yield Subscription(pubsub)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await aio_as_trio(pubsub.aclose)()

    async def flushdb(self) -> None:
        """Empty the current database (operators and fault tests: "Redis flushed mid-stream")."""
        await self._call("flushdb", "flushdb")


class Subscription:
    """Messages of one pub/sub channel."""

    def __init__(self, pubsub: Any) -> None:
        self._pubsub = pubsub

    async def next_message(self, *, timeout: float) -> bytes | None:
        """The next message's data, or None if none came within `timeout` seconds."""
        try:
            message = await aio_as_trio(self._pubsub.get_message)(ignore_subscribe_messages=True, timeout=timeout)
        except _TRANSLATED as exc:
            raise _translate(exc, "subscription") from exc
        return None if message is None else message["data"]


@asynccontextmanager
async def open_redis(url: str) -> AsyncIterator[Redis]:
    async def create() -> redis.asyncio.Redis:
        return redis.asyncio.from_url(
            url, socket_timeout=SOCKET_TIMEOUT_SECONDS, socket_connect_timeout=SOCKET_TIMEOUT_SECONDS
        )

    client = await aio_as_trio(create)()
    try:
        yield Redis(client)
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            await aio_as_trio(client.aclose)()
