"""A groups step over any group store, for one team, fed PipelineEvents batch by batch.

The step's logic runs on the in-memory store (tests/unit/test_groups_step.py); workers racing run
the same world on `GroupStore` and real Postgres (tests/integration/test_groups.py). The fake can
stand in because tests/contract/test_group_store_contract.py holds it to Postgres' behaviour.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid

import trio

from plugin_server.ingestion.event import PipelineEvent, Source
from plugin_server.ingestion.groups import GroupsStep
from plugin_server.storage.groups import GroupStoreLike
from plugin_server.storage.teams import Team

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
NOW = T0 + dt.timedelta(days=1)
_OFFSETS = itertools.count(1)


class World:
    """A groups step over `store` for one team; each `run` is one batch."""

    def __init__(self, store: GroupStoreLike, team: Team) -> None:
        self.team = team
        self.store = store
        self.step = GroupsStep(store=self.store)

    def event(
        self, name: str = "$pageview", *, at: dt.datetime = T0, distinct_id: str = "user", **properties
    ) -> PipelineEvent:
        return PipelineEvent(
            source=Source("events", 0, next(_OFFSETS), 1_700_000_000_000), raw=b"{}", uuid=str(uuid.uuid4()),
            distinct_id=distinct_id, event=name, properties=properties, now=NOW.isoformat(),
            token=self.team.api_token, team_id=self.team.id, team=self.team, resolved_timestamp=at,
        )  # fmt: skip

    def identify(self, group_type: str, key, *, at: dt.datetime = T0, **group_set) -> PipelineEvent:
        return self.event(
            "$groupidentify", at=at, **{"$group_type": group_type, "$group_key": key, "$group_set": group_set}
        )

    async def run(self, *events: PipelineEvent):
        """Like the pipeline: prefetch, events of distinct ids concurrently, then confirm."""
        batch = await self.step.prefetch(events, now=NOW)
        results: dict[str, PipelineEvent] = {}

        async def one(e: PipelineEvent) -> None:
            results[e.uuid] = (await self.step.process(e, batch)).value

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for e in events:
                    nursery.start_soon(one, e)
        self.step.confirm(batch)
        return [results[e.uuid] for e in events], [json.loads(row.line) for row in batch.rows]

    async def types(self) -> dict[str, int]:
        return (await self.store.type_mappings([self.team.id])).get(self.team.id, {})

    async def group(self, index: int, key: str):
        return (await self.store.fetch([(self.team.id, index, key)])).get((self.team.id, index, key))
