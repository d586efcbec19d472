"""The plugins step: each event through its team's `process_event` plugins (plugin_server/plugins/runtime.py),
after the team is known and before normalization and persons, as PostHog orders it.

Events are chunked by grouping key, so one key's events stay in offset order inside one chunk;
chunks run in worker threads concurrently. A plugin may change an event's name, distinct_id,
properties, timestamp and ip, or drop it (counted as dropped with reason `plugin`); the
pipeline groups events by key only after this step, so a changed distinct_id is grouped right.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import trio

from plugin_server.ingestion.event import PipelineEvent
from plugin_server.plugins.loaded import LoadedConfig
from plugin_server.plugins.runtime import CHUNK_EVENTS, PluginRuntime

DROP_REASON = "plugin"


def plugin_event(event: PipelineEvent) -> dict[str, Any]:
    """PostHog's PluginEvent: what a plugin sees (before timestamps are resolved)."""
    return {
        "uuid": event.uuid, "event": event.event, "distinct_id": event.distinct_id, "properties": event.properties,
        "timestamp": event.timestamp, "team_id": event.team_id, "ip": event.ip, "site_url": event.site_url,
        "now": event.now, "sent_at": event.sent_at,
    }  # fmt: skip


def apply_plugin_event(event: PipelineEvent, changed: dict[str, Any]) -> PipelineEvent:
    return event.evolve(
        event=changed["event"], distinct_id=changed["distinct_id"], properties=changed["properties"],
        timestamp=changed["timestamp"], ip=changed["ip"],
    )  # fmt: skip


class PluginsStep:
    def __init__(self, *, runtime: PluginRuntime) -> None:
        self._runtime = runtime

    async def process(self, events: list[PipelineEvent]) -> tuple[list[PipelineEvent], int]:
        """The events after plugins, in their order, without dropped ones; and how many dropped."""
        async with self._runtime.pinned() as generation:
            chunks: list[tuple[list[LoadedConfig], list[int]]] = []
            by_team: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
            for index, event in enumerate(events):
                if event.team_id in generation.chains:
                    by_team[event.team_id][event.grouping_key].append(index)
            for team_id, groups in by_team.items():
                chunk: list[int] = []
                for indexes in groups.values():
                    chunk.extend(indexes)
                    if len(chunk) >= CHUNK_EVENTS:
                        chunks.append((generation.chains[team_id], chunk))
                        chunk = []
                if chunk:
                    chunks.append((generation.chains[team_id], chunk))
            if not chunks:
                return events, 0
            results: dict[int, dict[str, Any] | None] = {}

            async def run(chain: list[LoadedConfig], indexes: list[int]) -> None:
                out = await self._runtime.process_events(chain, [plugin_event(events[i]) for i in indexes])
                results.update(zip(indexes, out, strict=True))

            async with trio.open_nursery() as nursery:
                for chain, indexes in chunks:
                    nursery.start_soon(run, chain, indexes)
        kept = []
        for index, event in enumerate(events):
            if index not in results:
                kept.append(event)
            elif (changed := results[index]) is not None:
                kept.append(apply_plugin_event(event, changed))
        return kept, len(events) - len(kept)
