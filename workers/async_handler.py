"""The async handlers' worker: written events through plugins' `on_event` and `export_events`.

Consumes the events topic (`clickhouse_events_json`: the Kafka sink's rows, or, with the direct
sink, the rows of teams that have such plugins, produced by the ingestion worker once durable) in
its own consumer group. A batch's offsets are committed only after every on_event call and every
export of the batch ran (a `RetryError`'d export is enqueued as a job first), so a crash never
skips an event; it may deliver some twice, as PostHog's at-least-once does.
"""

from __future__ import annotations

from prometheus_client import Counter

from plugin_server.core import jsonx, logs
from plugin_server.plugins.hooks import processed_event
from plugin_server.plugins.runtime import PluginRuntime
from plugin_server.storage.jobs import JobQueue
from plugin_server.storage.kafka.client import Message

log = logs.get(__name__)

ASYNC_EVENTS = Counter("plugin_async_events_total", "Written events handed to on_event / export_events plugins.")
ASYNC_SKIPPED = Counter("plugin_async_skipped_total", "Messages on the events topic that are not events rows.")


class AsyncHandler:
    """`handle(batch)` for the events topic's BatchConsumer."""

    def __init__(self, *, runtime: PluginRuntime, jobs: JobQueue | None) -> None:
        self._runtime = runtime
        self._jobs = jobs

    async def __call__(self, batch: list[Message]) -> None:
        if not self._runtime.any_async():
            # No loaded config has on_event or export_events: the batch is for nobody, and with
            # the Kafka sink it is every event written. Acknowledged unread (parsing it cost the
            # writer's process about as much as inserting it).
            return
        events = []
        for message in batch:
            try:
                row = jsonx.loads(message.value) if message.value is not None else None  # a tombstone: no row
            except ValueError:
                row = None
            if not isinstance(row, dict) or not isinstance(row.get("team_id"), int):
                ASYNC_SKIPPED.inc()
                log.warning("not an events row on the events topic", partition=message.partition, offset=message.offset)
                continue
            if self._runtime.wants_async(row["team_id"]):
                events.append(processed_event(row))
        if events:
            await self._runtime.run_async(events, self._jobs)
            ASYNC_EVENTS.inc(len(events))
