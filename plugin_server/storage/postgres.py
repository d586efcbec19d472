"""Postgres adapter: an asyncpg pool behind a trio interface.

asyncpg is an asyncio library. Each method crosses the trio-asyncio bridge once; work that needs
several statements (a transaction) is passed in as one asyncio function run by `run_in_transaction`,
so it crosses once as well. asyncpg's errors are translated into ours here and nowhere else:
connection loss, timeouts and serialization failures are `ServiceUnavailable` (retry), the
rest `StorageError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

import asyncpg
import orjson
import trio
from trio_asyncio import aio_as_trio

from plugin_server.core import jsonx
from plugin_server.core.errors import ServiceUnavailable, StorageError

T = TypeVar("T")
CONNECT_TIMEOUT_SECONDS = 10.0
COMMAND_TIMEOUT_SECONDS = 30.0
# SQLSTATE classes that describe the server's state, not the request: 08 connection exception,
# 40 transaction rollback (serialization failure, deadlock), 53 insufficient resources,
# 57 operator intervention (shutdown, cancel), 58 system error.
TRANSIENT_SQLSTATE_CLASSES = ("08", "40", "53", "57", "58")


def _translate(exc: BaseException, what: str) -> Exception:
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", None) or ""
        if state[:2] in TRANSIENT_SQLSTATE_CLASSES:
            return ServiceUnavailable("postgres", f"{what}: {exc} (SQLSTATE {state})")
        return StorageError("postgres", f"{what}: {exc} (SQLSTATE {state})")
    return ServiceUnavailable("postgres", f"{what}: {exc!r}")


# InternalClientError: a connection whose server end was killed mid-operation can be left in a
# state asyncpg refuses to use; the pool replaces it, so a retry succeeds.
_TRANSLATED = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    asyncio.TimeoutError,
)


class Postgres:
    """A connection pool. Every call takes a connection, runs, and gives it back."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def _call(self, what: str, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        try:
            # trio_asyncio is untyped: aio_as_trio(fn) returns what fn returns, awaited.
            result: T = await aio_as_trio(fn)(*args)
        except _TRANSLATED as exc:
            raise _translate(exc, what) from exc
        return result

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await self._call("fetch", self._pool.fetch, sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        return await self._call("fetchrow", self._pool.fetchrow, sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._call("fetchval", self._pool.fetchval, sql, *args)

    async def execute(self, sql: str, *args: Any) -> str:
        return await self._call("execute", self._pool.execute, sql, *args)

    async def run_in_transaction(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run `fn(connection)` (an asyncio coroutine function) inside one transaction."""

        async def run() -> T:
            async with self._pool.acquire() as conn, conn.transaction():
                # the pool hands out a proxy that forwards every Connection method to its connection
                return await fn(cast(asyncpg.Connection, conn))

        return await self._call("transaction", run)


def _encode_jsonb(value: Any) -> str:
    # Postgres rejects NUL in jsonb text; PostHog writes U+FFFD instead.
    return jsonx.dumps_str(value).replace("\\u0000", "\\ufffd")


async def _init_connection(conn: asyncpg.Connection) -> None:
    """json/jsonb columns travel as Python values (orjson), not as text."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=_encode_jsonb, decoder=orjson.loads, schema="pg_catalog")


@asynccontextmanager
async def open_postgres(url: str, *, min_size: int = 1, max_size: int = 10) -> AsyncIterator[Postgres]:
    async def create() -> asyncpg.Pool:
        return await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=CONNECT_TIMEOUT_SECONDS,
            command_timeout=COMMAND_TIMEOUT_SECONDS,
            init=_init_connection,
        )

    try:
        pool = await aio_as_trio(create)()
    except _TRANSLATED as exc:
        raise _translate(exc, "connect") from exc
    try:
        yield Postgres(pool)
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(10):
            await aio_as_trio(pool.close)()
