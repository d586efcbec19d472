"""JSON for the hot path: orjson (several times faster than the standard library), strict.

Strict means what capture and ClickHouse mean by JSON: NaN and Infinity are refused, nesting is
bounded. Two cases orjson refuses that PostHog accepts fall back to the standard library, so only
they pay for it: lone UTF-16 surrogate escapes ("\\ud800") when reading, and strings holding lone
surrogates when writing, which become their escape text (PostHog's safeClickhouseString).
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

JSONDecodeError = ValueError  # orjson.JSONDecodeError and json.JSONDecodeError both subclass it
_SURROGATE = re.compile("[\ud800-\udfff]")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_STRICT = json.JSONDecoder(parse_constant=_reject_constant)


def loads(data: bytes | str) -> Any:
    """Parse strict JSON; raises ValueError (also for undecodable bytes and deep nesting)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "surrogate" not in str(exc):
            raise
    text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
    try:
        return _STRICT.decode(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON. Lone surrogates in strings become their escape text."""
    try:
        return orjson.dumps(value)
    except TypeError:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return _SURROGATE.sub(lambda m: f"\\\\u{ord(m.group()):04x}", text).encode("utf-8")


def dumps_str(value: Any) -> str:
    return dumps(value).decode("utf-8")
