"""`meta.logger`: plugin log entries (source PLUGIN); `print` goes to CONSOLE entries through the
sandbox's `log` (plugin_server/plugins/loaded.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from plugin_server.plugins.meta._bridge import MAX_STORED_CHARS, plain

MAX_LOG_CHARS = 50_000  # PostHog drops longer log messages; we truncate and say so


class Logger:
    """Each part of a message is cut at MAX_LOG_CHARS, and parts past that many characters are
    left out: the host never joins or serializes more than a few times the limit (a thousand
    10 MB parts would be a 10 GB join). A structure is checked or copied out first (`plain`), so one too
    large or too deep to show is a MetaError, never an expansion on the host."""

    __slots__ = ("_write",)

    def __init__(self, *, write: Callable[[str, str, str], None]) -> None:
        self._write = write  # (source, type, message)

    def _emit(self, kind: str, parts: tuple[Any, ...]) -> None:
        pieces = []
        total = 0
        for part in parts:
            if total > MAX_LOG_CHARS:
                break
            # the base class's slicing: an exact str, whatever a plugin's subclass defines
            piece = str.__getitem__(part, slice(MAX_LOG_CHARS)) if isinstance(part, str) else _display(part)
            pieces.append(piece)
            total += len(piece) + 1
        self._write("PLUGIN", kind, " ".join(pieces))

    def debug(self, *parts: Any) -> None:
        self._emit("DEBUG", parts)

    def info(self, *parts: Any) -> None:
        self._emit("INFO", parts)

    def log(self, *parts: Any) -> None:
        self._emit("LOG", parts)

    def warn(self, *parts: Any) -> None:
        self._emit("WARN", parts)

    def error(self, *parts: Any) -> None:
        self._emit("ERROR", parts)


def _display(value: Any) -> str:
    copy = plain(value, limit=MAX_STORED_CHARS, default=_type_name)
    try:
        return json.dumps(copy)[:MAX_LOG_CHARS]
    except (TypeError, ValueError):  # an int past the digits limit of int-to-str conversion
        return f"<{type(value).__name__}>"


def _type_name(value: Any) -> str:
    return f"<{type(value).__name__}>"
