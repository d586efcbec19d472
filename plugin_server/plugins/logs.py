"""Plugin log entries: written from plugin threads and the runtime, shipped to ClickHouse's
`plugin_log_entries` through a sink (REFERENCE.md 5.2 and 6.8).

`PluginLogs` is a bounded buffer any thread may write to (a deque append is atomic); `LogShipper`
is the actor that drains it every `FLUSH_SECONDS` into a sink and flushes. Logs are not part of a
batch's commit: a crash loses at most the last second of log entries, never an event, and a
retried batch may log twice. A full buffer drops the oldest entries and counts them.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid as uuid_lib
from collections import deque
from dataclasses import dataclass

import trio
from prometheus_client import Counter

from plugin_server.core import jsonx, logs
from plugin_server.core.errors import PluginServerError
from plugin_server.core.retry import LOG_SHIP_RETRY
from plugin_server.storage.sinks import Sink
from plugin_server.storage.tables import PLUGIN_LOG_TABLE, Row, ch_datetime

log = logs.get(__name__)

SOURCES = ("SYSTEM", "PLUGIN", "CONSOLE")
TYPES = ("DEBUG", "LOG", "INFO", "WARN", "ERROR")
MAX_MESSAGE_CHARS = 50_000  # PostHog drops longer messages; we cut them and say so
BUFFER_ENTRIES = 100_000
FLUSH_SECONDS = 1.0
# posthog_plugin.log_level (2023 numbering): the lowest type kept for PLUGIN/CONSOLE entries.
_LEVEL_DROPS = {
    0: (),
    1: ("LOG",),
    2: ("LOG", "INFO"),
    3: ("DEBUG", "LOG", "INFO", "WARN"),
}

LOG_ENTRIES = Counter("plugin_log_entries_total", "Plugin log entries written.", ["source", "type"])
LOG_ENTRIES_DROPPED = Counter("plugin_log_entries_dropped_total", "Plugin log entries dropped (full buffer).")


@dataclass(frozen=True, slots=True)
class LogTarget:
    """Whose entries these are."""

    team_id: int
    plugin_id: int
    plugin_config_id: int
    instance_id: str
    log_level: int | None = None


class PluginLogs:
    def __init__(self, capacity: int = BUFFER_ENTRIES) -> None:
        self._entries: deque[Row] = deque(maxlen=capacity)
        self._capacity = capacity

    def write(self, target: LogTarget, source: str, kind: str, message: str) -> None:
        kind = kind.upper()
        if kind not in TYPES:
            kind = "INFO"
        if source != "SYSTEM" and kind in _LEVEL_DROPS.get(target.log_level or 0, ()):
            return
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[:MAX_MESSAGE_CHARS] + f"... (cut: {len(message)} characters)"
        now = dt.datetime.now(dt.UTC)
        row = {
            "id": str(uuid_lib.uuid4()), "team_id": target.team_id, "plugin_id": target.plugin_id,
            "plugin_config_id": target.plugin_config_id, "timestamp": ch_datetime(now), "source": source,
            "type": kind, "message": message, "instance_id": target.instance_id,
            "_timestamp": int(now.timestamp()), "_offset": 0,
        }  # fmt: skip
        if len(self._entries) == self._capacity:
            LOG_ENTRIES_DROPPED.inc()
        self._entries.append(Row(PLUGIN_LOG_TABLE, jsonx.dumps(row)))
        LOG_ENTRIES.labels(source, kind).inc()

    def drain(self) -> list[Row]:
        rows = []
        while self._entries:
            rows.append(self._entries.popleft())
        return rows

    def __len__(self) -> int:
        return len(self._entries)


class LogShipper:
    """Moves log entries from the buffer to the sink, every FLUSH_SECONDS and once more on stop."""

    def __init__(self, *, buffer: PluginLogs, sink: Sink) -> None:
        self._buffer = buffer
        self._sink = sink
        self._positions = itertools.count()  # synthetic offsets: logs have no input position

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                await trio.sleep(FLUSH_SECONDS)
                await self.ship()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self.ship()

    async def ship(self) -> None:
        rows = self._buffer.drain()
        if not rows:
            return
        for row in rows:
            self._sink.add(row, topic="plugin-logs", partition=0, offset=next(self._positions))
        for attempt in itertools.count(1):
            try:
                await self._sink.flush()
                return
            except PluginServerError as exc:
                delay = LOG_SHIP_RETRY.decide(exc, attempt)
                if delay is None:
                    self._sink.reset()
                    LOG_ENTRIES_DROPPED.inc(len(rows))
                    log.warning("plugin log entries lost", entries=len(rows), error=str(exc))
                    return
                await trio.sleep(delay)
