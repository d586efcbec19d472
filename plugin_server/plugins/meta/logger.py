"""`meta.logger`: plugin log entries (source PLUGIN); `print` goes to CONSOLE entries through the
sandbox's `log` (plugin_server/plugins/loaded.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

MAX_LOG_CHARS = 50_000  # PostHog drops longer log messages; we truncate and say so


class Logger:
    __slots__ = ("_write",)

    def __init__(self, *, write: Callable[[str, str, str], None]) -> None:
        self._write = write  # (source, type, message)

    def _emit(self, kind: str, parts: tuple[Any, ...]) -> None:
        message = " ".join(p if isinstance(p, str) else _display(p) for p in parts)
        self._write("PLUGIN", kind, message)

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
    try:
        return json.dumps(value, default=lambda v: f"<{type(v).__name__}>")[:MAX_LOG_CHARS]
    except (TypeError, ValueError, RecursionError):
        return f"<{type(value).__name__}>"
