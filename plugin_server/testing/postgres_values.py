"""What Postgres does to the values the stores write, for the in-memory fakes.

Each function gives back what a column would hold after a round trip through
plugin_server/storage/postgres.py, or raises the `StorageError` Postgres would answer with. The
contract suites (tests/contract/) check every rule here against the real database, so a fake
built on them cannot drift silently.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid as uuid_lib
from typing import Any

import orjson

from plugin_server.core import jsonx
from plugin_server.core.errors import StorageError

BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
# What Postgres' bigint input function accepts (as of 16: ASCII digits, optional sign, underscores
# between digits, surrounding whitespace). The fake refuses the rest (hex, octal, binary literals
# that Postgres 16+ would also read), which no caller writes.
_BIGINT_TEXT = re.compile(r"\s*[+-]?[0-9]+(?:_[0-9]+)*\s*", re.ASCII)
_HEX_32 = re.compile("[0-9a-fA-F]{32}")


def refused(detail: str, sqlstate: str) -> StorageError:
    return StorageError("postgres", f"{detail} (SQLSTATE {sqlstate})")


def text(value: str, *, limit: int | None = None) -> str:
    """A text or varchar(limit) column: no NUL character (UTF-8 text cannot hold it), and at
    most `limit` characters (not bytes)."""
    if "\x00" in value:
        raise refused('invalid byte sequence for encoding "UTF8": 0x00', "22021")
    if limit is not None and len(value) > limit:
        raise refused(f"value too long for type character varying({limit})", "22001")
    return value


def jsonb(value: Any) -> Any:
    """A jsonb column: encoded as the adapter encodes it (orjson, NaN as null, lone surrogates as
    their escape text, U+0000 as U+FFFD), decoded as a fresh value with object keys in jsonb's
    order (shorter keys first, then bytewise). What cannot be encoded is refused."""
    try:
        encoded = jsonx.dumps_str(value)
    except (TypeError, ValueError) as exc:
        raise refused(f"invalid input for a jsonb argument: {exc}", "22000") from None
    try:  # the standard library's fallback (for lone surrogates) writes NaN, which jsonb refuses
        decoded = orjson.loads(encoded.replace("\\u0000", "\\ufffd"))
    except orjson.JSONDecodeError:
        raise refused("invalid input syntax for type json", "22P02") from None
    return _jsonb_order(decoded)


def _jsonb_order(value: Any) -> Any:
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        return {k: _jsonb_order(value[k]) for k in keys}
    if isinstance(value, list):
        return [_jsonb_order(v) for v in value]
    return value


def timestamptz(value: dt.datetime) -> dt.datetime:
    """A timestamptz column as asyncpg reads it back: in UTC; a naive value was taken as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def uuid(value: str) -> str:
    """A uuid argument as asyncpg encodes it (32 hex digits, dashes anywhere, 32 to 36
    characters in all) and Postgres prints it back (lower case, dashed)."""
    digits = value.replace("-", "")
    if not 32 <= len(value) <= 36 or not _HEX_32.fullmatch(digits):
        raise refused(f"invalid input for a uuid argument: {value!r}", "22000")
    return str(uuid_lib.UUID(digits))


def bigint(value: int) -> int:
    if not BIGINT_MIN <= value <= BIGINT_MAX:
        raise refused("bigint out of range", "22003")
    return value


def bigint_from_text(value: str) -> int:
    """`value::bigint`."""
    if not _BIGINT_TEXT.fullmatch(value):
        raise refused(f'invalid input syntax for type bigint: "{value}"', "22P02")
    return bigint(int(value))


def foreign_key(table: str, column: str, value: object) -> StorageError:
    return refused(f'insert or update on table "{table}" violates foreign key constraint ({column})={value}', "23503")


class Clock:
    """`now()` for a fake: the wall clock, but strictly increasing, so two writes in a row never
    share a timestamp (two transactions in Postgres practically never do)."""

    def __init__(self) -> None:
        self._last = dt.datetime.min.replace(tzinfo=dt.UTC)

    def now(self) -> dt.datetime:
        self._last = max(dt.datetime.now(dt.UTC), self._last + dt.timedelta(microseconds=1))
        return self._last
