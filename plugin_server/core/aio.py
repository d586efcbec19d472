"""The asyncio loop that the asyncio libraries (asyncpg, redis.asyncio, aiokafka) run in, inside trio.

trio-asyncio's loop raises any error asyncio reports to its exception handler into the trio
nursery, failing the whole process. Drivers report errors nobody can act on that way: asyncpg,
when Postgres kills a connection mid-query, leaves a future's "unexpected connection_lost()"
unretrieved, although the query that used it has already failed (and been retried) in our code.
A database failover must not crash the server, so such reports are logged, not raised.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio_asyncio

from plugin_server.core import logs

log = logs.get(__name__)


def _report(loop: Any, context: dict[str, Any]) -> None:
    log.warning(
        "asyncio reported an error that no task awaited",
        message=context.get("message"),
        error=repr(context.get("exception")),
    )


@asynccontextmanager
async def open_loop() -> AsyncIterator[Any]:
    async with trio_asyncio.open_loop() as loop:
        loop.set_exception_handler(_report)
        yield loop
