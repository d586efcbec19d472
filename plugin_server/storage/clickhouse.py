"""ClickHouse adapter: clickhouse-connect, for a server over HTTP or chDB in-process.

clickhouse-connect is synchronous, so each call runs in a worker thread, one at a time per
client (a chDB engine is one session; an HTTP client keeps one session id). Inserts are
JSONEachRow blocks with an `insert_deduplication_token`, so a retried batch is written once.

clickhouse-connect's errors are translated into ours here and nowhere else: connection problems
and ClickHouse's transient error codes are `ServiceUnavailable` (retry), the rest `StorageError`.
"""

from __future__ import annotations

import fcntl
import urllib.parse
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import clickhouse_connect
import trio
from clickhouse_connect.driver import exceptions as ch_errors

from plugin_server.core.errors import EngineLocked, ServiceUnavailable, StorageError

# ClickHouse error codes that describe the server's state, not the request: retrying may succeed.
# 159 TIMEOUT_EXCEEDED, 164 READONLY (replica read-only), 202 TOO_MANY_SIMULTANEOUS_QUERIES,
# 209 SOCKET_TIMEOUT, 210 NETWORK_ERROR, 241 MEMORY_LIMIT_EXCEEDED, 242 TABLE_IS_READ_ONLY,
# 252 TOO_MANY_PARTS, 285 TOO_FEW_LIVE_REPLICAS, 319 UNKNOWN_STATUS_OF_INSERT, 425 SYSTEM_ERROR.
TRANSIENT_CODES = frozenset({159, 202, 209, 210, 241, 242, 252, 285, 319, 425})
# Insert errors that blame the data, so bisecting finds rows to dead-letter: parse and type
# errors (6, 26, 27, 38, 41, 53, 69, 70, 72, 117, 131, 190, 321, 449, 517). Every other insert
# error (a missing table, access, a full disk, an unknown code) blames ClickHouse's state:
# it is retried, never dead-lettered, because a transient is not bad data.
ROW_ERROR_CODES = frozenset({6, 26, 27, 38, 41, 53, 69, 70, 72, 117, 131, 190, 321, 449, 517})
QUERY_TIMEOUT_SECONDS = 120

T = TypeVar("T")


class RowsRejected(StorageError):
    """ClickHouse refused an insert because of what is in it (bad values), not its own state."""


def _error_code(exc: Exception) -> int | None:
    text = str(exc)
    marker = "Code: "
    at = text.find(marker)
    if at < 0:
        return None
    digits = "".join(c for c in text[at + len(marker) : at + len(marker) + 6] if c.isdigit())
    return int(digits) if digits else None


def _translate(exc: Exception, what: str) -> Exception:
    if isinstance(exc, ch_errors.OperationalError | OSError):
        return ServiceUnavailable("clickhouse", f"{what}: {exc}")
    if _error_code(exc) in TRANSIENT_CODES:
        return ServiceUnavailable("clickhouse", f"{what}: {exc}")
    return StorageError("clickhouse", f"{what}: {exc}")


def _translate_insert(exc: Exception, what: str) -> Exception:
    if not isinstance(exc, ch_errors.OperationalError | OSError) and _error_code(exc) in ROW_ERROR_CODES:
        return RowsRejected("clickhouse", f"{what}: {exc}")
    return ServiceUnavailable("clickhouse", f"{what}: {exc}")


class ClickHouse:
    """One ClickHouse connection. Safe to share between tasks: calls are serialized by a lock.

    Read-only queries from outside (`query_json`) run on a second connection, `reader`, that is
    made read-only for its whole life. Per-query `readonly=1` is not enough on chDB: clickhouse-
    connect applies chDB settings with SET and cannot restore them after readonly=1, and chDB
    runs several ';'-separated statements, so the reader must refuse writes on its own.
    """

    def __init__(
        self,
        client: clickhouse_connect.driver.Client,
        *,
        embedded: bool,
        reader: clickhouse_connect.driver.Client | None = None,
    ) -> None:
        self._client = client
        self._lock = trio.Lock()
        self.embedded = embedded
        self._reader = reader
        self._reader_lock = trio.Lock()

    async def _call(
        self,
        what: str,
        fn: Callable[..., T],
        *args: Any,
        lock: trio.Lock | None = None,
        insert: bool = False,
        **kwargs: Any,
    ) -> T:
        async with lock or self._lock:
            try:
                return await trio.to_thread.run_sync(lambda: fn(*args, **kwargs))
            except (ch_errors.ClickHouseError, OSError) as exc:
                raise (_translate_insert if insert else _translate)(exc, what) from exc

    async def command(self, sql: str, parameters: dict[str, Any] | None = None) -> None:
        await self._call("command", self._client.command, sql, parameters=parameters)

    async def insert_json(self, table: str, columns: list[str], block: bytes, *, dedup_token: str) -> None:
        """Insert newline-separated JSON rows; a repeat with the same token is ignored by ClickHouse."""
        if not block:
            return
        await self._call(
            f"insert into {table}",
            self._client.raw_insert,
            table,
            columns,
            insert_block=block,
            fmt="JSONEachRow",
            settings={"insert_deduplication_token": dedup_token},
            insert=True,
        )

    async def query_json(self, sql: str) -> bytes:
        """Run an untrusted query that may only read; returns its rows as JSON lines."""
        sql = sql.strip().rstrip(";").strip()
        if self._reader is not None:
            return await self._call("query", self._reader.raw_query, sql, fmt="JSONEachRow", lock=self._reader_lock)
        return await self._call(
            "query", self._client.raw_query, sql, fmt="JSONEachRow", settings={"readonly": 1}, lock=self._reader_lock
        )

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._client.close()

    async def query_rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        result = await self._call("query", self._client.query, sql, parameters=parameters)
        return [tuple(row) for row in result.result_rows]


def _locked_by_another_process(status_file: Path) -> bool:
    """ClickHouse holds an flock on `status` while an engine has the directory open."""
    try:
        with status_file.open("rb") as f:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def _connect(url: str) -> ClickHouse:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "chdb":
        path = Path(parts.path)
        path.mkdir(parents=True, exist_ok=True)
        try:
            client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
        except ch_errors.ProgrammingError as exc:
            if _locked_by_another_process(path / "status"):
                raise EngineLocked(str(path)) from exc
            raise StorageError("clickhouse", f"cannot open chdb at {path}: {exc}") from exc
        reader = clickhouse_connect.get_client(dsn=f"chdb://{path}")
        reader.command(f"SET max_execution_time = {QUERY_TIMEOUT_SECONDS}")
        reader.command("SET readonly = 1")  # for the life of this connection: it cannot be undone
        return ClickHouse(client, embedded=True, reader=reader)
    try:
        client = clickhouse_connect.get_client(
            dsn=url, autogenerate_session_id=False, connect_timeout=10, send_receive_timeout=QUERY_TIMEOUT_SECONDS
        )
    except ch_errors.ClickHouseError as exc:
        raise _translate(exc, "connect") from exc
    return ClickHouse(client, embedded=False)


@asynccontextmanager
async def open_clickhouse(url: str) -> AsyncIterator[ClickHouse]:
    """Open ClickHouse at `url`. chdb:// opens the engine in this process (one process per path)."""
    ch = await trio.to_thread.run_sync(_connect, url)
    try:
        yield ch
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(ch.close)
