"""The ingestion pipeline: run the steps over one consumed batch and collect what to write.

Events of one grouping key (team or token, and distinct_id) run strictly in offset order;
different keys run concurrently, at most `tasks_per_worker` at a time. Steps return tagged
results; a retryable error raised by a step propagates, so the caller retries the whole batch
and commits nothing.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from plugin_server.core import metrics
from plugin_server.core.errors import PluginServerError
from plugin_server.ingestion.dead_letter import dead_letter_message
from plugin_server.ingestion.event import PipelineEvent, Source
from plugin_server.ingestion.groups import GroupBatch, GroupsStep
from plugin_server.ingestion.normalize import normalize
from plugin_server.ingestion.parse import parse_message
from plugin_server.ingestion.persons import PersonBatch, PersonsStep
from plugin_server.ingestion.plugins import DROP_REASON as PLUGIN_DROP_REASON
from plugin_server.ingestion.plugins import PluginsStep
from plugin_server.ingestion.results import DeadLetter, Drop, Ok, Retry, StepResult
from plugin_server.ingestion.row import event_rows
from plugin_server.ingestion.teams import TeamCache, resolve_team
from plugin_server.storage.kafka.client import Message
from plugin_server.storage.tables import Row, ch_datetime

# The steps and passes timed in `ingestion_step_seconds`, once per batch each (never per event).
STEPS = ("parse", "resolve_team", "plugins", "normalize", "persons_groups", "persons_flush")
_STEP_SECONDS = {step: metrics.INGESTION_STEP_SECONDS.labels(step) for step in STEPS}

# A pure step as the runner calls it: (name, step, the arguments after the event).
PureStep = tuple[str, Callable[..., StepResult[PipelineEvent]], tuple[Any, ...]]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Laps:
    """One perf_counter reading per step of a batch: `lap(step)` observes the time since the last."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = time.perf_counter()

    def __call__(self, step: str) -> None:
        now = time.perf_counter()
        _STEP_SECONDS[step].observe(now - self._last)
        self._last = now


@dataclass
class BatchOutput:
    """What one batch produced. Metrics are counted by the caller once the batch is committed,
    so a retried batch is not counted twice."""

    rows: list[tuple[Source, Row]] = field(default_factory=list)
    dead_letters: list[tuple[str, bytes]] = field(default_factory=list)  # (reason, DLQ message)
    dropped: list[str] = field(default_factory=list)  # reasons
    warnings: list[str] = field(default_factory=list)  # warning types
    on_durable: list[Callable[[], None]] = field(default_factory=list)  # run once rows are durable

    def count(self) -> None:
        for reason, _ in self.dead_letters:
            metrics.EVENTS_DEAD_LETTERED.labels(reason).inc()
        for reason in self.dropped:
            metrics.EVENTS_DROPPED.labels(reason).inc()
        for kind in self.warnings:
            metrics.INGESTION_WARNINGS.labels(kind).inc()


class RetryBatch(PluginServerError):
    """A step asked for the batch to be retried."""

    retryable = True


@dataclass
class _Batch:
    """What every step of one batch shares: one clock reading, and where results go."""

    now: dt.datetime
    now_text: str  # `now` as ClickHouse text, formatted once per batch
    out: BatchOutput


class IngestionPipeline:
    """Runs a batch in three passes: per event, parse, team, plugins (in threads) and normalize; then, grouped
    by key with ordering inside a group, the steps that need I/O (persons, groups); then one write
    of everything the batch changed (persons' coalesced updates)."""

    def __init__(
        self,
        *,
        teams: TeamCache,
        tasks_per_worker: int,
        persons: PersonsStep | None = None,
        groups: GroupsStep | None = None,
        plugins: PluginsStep | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._teams = teams
        self._persons = persons
        self._groups = groups
        self._plugins = plugins
        self._team_steps: tuple[PureStep, ...] = (("resolve_team", resolve_team, (teams,)),)
        self._tasks = tasks_per_worker
        self._clock = clock

    async def process(self, messages: Sequence[Message]) -> BatchOutput:
        lap = _Laps()
        now = self._clock()
        batch = _Batch(now, ch_datetime(now), BatchOutput())
        parsed: list[PipelineEvent] = []
        for message in messages:
            source = Source(message.topic, message.partition, message.offset, message.timestamp_ms)
            result = parse_message(message.value, source)
            if isinstance(result, Ok):
                parsed.append(result.value)
            else:
                self._dead_letter(batch, result, message.value, source, "parse", None)
        lap("parse")

        await self._teams.prefetch(
            (e.token for e in parsed if e.team_id is None and e.token), (e.team_id for e in parsed if e.team_id)
        )
        teamed = [t for e in parsed if (t := self._pure_steps(e, batch, self._team_steps)) is not None]
        lap("resolve_team")
        if self._plugins is not None:
            teamed, dropped = await self._plugins.process(teamed)
            batch.out.dropped.extend([PLUGIN_DROP_REASON] * dropped)
            lap("plugins")
        groups: dict[str, list[PipelineEvent]] = defaultdict(list)
        normalize_steps: tuple[PureStep, ...] = (("normalize", normalize, (batch.now,)),)
        for event in teamed:
            if (ready := self._pure_steps(event, batch, normalize_steps)) is not None:
                groups[ready.grouping_key].append(ready)
        lap("normalize")

        ready_events = [e for g in groups.values() for e in g]
        persons, companies_step = self._persons, self._groups
        people = await persons.prefetch(ready_events) if persons else None
        companies = await companies_step.prefetch(ready_events, now=now) if companies_step else None
        # Largest groups first, so one hot distinct_id does not finish last (PostHog does the same).
        ordered = iter(sorted(groups.values(), key=len, reverse=True))
        workers = min(self._tasks, len(groups))
        if workers <= 1:
            await self._drain_groups(ordered, batch, people, companies)
        else:
            async with trio.open_nursery() as nursery:
                for _ in range(workers):
                    nursery.start_soon(self._drain_groups, ordered, batch, people, companies)
        lap("persons_groups")  # the prefetches included

        if messages:
            last = messages[-1]  # rows of persons and groups are anchored at the batch's end
            anchor = Source(last.topic, last.partition, last.offset, last.timestamp_ms)
            if persons is not None and people is not None:
                await persons.flush(people, now=now)
                lap("persons_flush")
                batch.out.rows.extend((anchor, row) for row in people.rows)
                batch.out.on_durable.append(lambda: persons.confirm(people))
            if companies_step is not None and companies is not None:
                batch.out.rows.extend((anchor, row) for row in companies.rows)
                batch.out.on_durable.append(lambda: companies_step.confirm(companies))
        return batch.out

    def _pure_steps(self, event: PipelineEvent, batch: _Batch, steps: tuple[PureStep, ...]) -> PipelineEvent | None:
        for name, step, args in steps:
            result = step(event, *args)
            if isinstance(result, Ok):
                event = result.value
            elif isinstance(result, DeadLetter):
                self._dead_letter(batch, result, event.raw, event.source, name, event)
                return None
            elif isinstance(result, Drop):
                batch.out.dropped.append(result.reason)
                return None
            elif isinstance(result, Retry):
                raise RetryBatch(f"{name}: {result.reason}")
        return event

    async def _drain_groups(
        self,
        groups: Iterator[list[PipelineEvent]],
        batch: _Batch,
        people: PersonBatch | None,
        companies: GroupBatch | None,
    ) -> None:
        persons, companies_step = self._persons, self._groups  # a batch exists only with its step
        for group in groups:  # a shared iterator: each group is taken by exactly one task
            for event in group:  # one key: strictly in offset order
                if persons is not None and people is not None:
                    event = (await persons.process(event, people)).value
                if companies_step is not None and companies is not None:
                    event = (await companies_step.process(event, companies)).value
                batch.out.warnings.extend(w.type for w in event.warnings)
                batch.out.rows.extend((event.source, row) for row in event_rows(event, created_at=batch.now_text))
            await trio.lowlevel.checkpoint()

    @staticmethod
    def _dead_letter(
        batch: _Batch,
        result: DeadLetter,
        raw: bytes | None,
        source: Source,
        location: str,
        event: PipelineEvent | None,
    ) -> None:
        message = dead_letter_message(
            raw=raw, source=source, result=result, location=location, at=batch.now, event=event
        )
        batch.out.dead_letters.append((result.reason, message))
