"""Capabilities as components; a mode is a set of components.

A component says, from the deployment alone (pure, table-tested), whether it runs and which shared
resources it needs, and builds its actors from the opened resources. The server opens the union of
the needs, starts the actors, and stops them stage by stage; it knows no capability by name.
Adding a capability (jobs, scheduler, capture, api) is adding a component and naming it in MODES.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import trio

from plugin_server.app.config import Settings
from plugin_server.app.deployment import Deployment
from plugin_server.app.resources import Need, Resources
from plugin_server.app.topics import row_topics
from plugin_server.core.health import ConsumerStatus
from plugin_server.http.server import App, HttpServer
from plugin_server.ingestion.groups import GroupsStep
from plugin_server.ingestion.person_cache import SharedStates
from plugin_server.ingestion.persons import PersonsStep
from plugin_server.ingestion.pipeline import IngestionPipeline
from plugin_server.ingestion.plugins import PluginsStep
from plugin_server.ingestion.teams import TeamCache
from plugin_server.storage.groups import GroupStore
from plugin_server.storage.jobs import JobQueue
from plugin_server.storage.kafka.client import Message
from plugin_server.storage.persons import PersonStore
from plugin_server.storage.sinks import DirectSink, KafkaSink, Sink
from plugin_server.storage.teams import TeamStore
from workers.async_handler import AsyncHandler
from workers.consumer import BatchConsumer, StagedHandler
from workers.ingestion import IngestionHandler
from workers.pool import WorkerPool
from workers.writer import WriterHandler


class Actor(Protocol):
    """A long-running part: `run` reports started when ready and returns once stopped;
    `request_stop` asks it to finish what is in flight; `stopped` is set when `run` returned."""

    stopped: trio.Event

    @property
    def statuses(self) -> Sequence[ConsumerStatus]: ...

    def request_stop(self) -> None: ...

    async def run(self, *, task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED) -> None: ...


@dataclass(frozen=True)
class Component:
    name: str
    # Stop order: stage 0 stops first (ingestion before the writer that takes what it produced);
    # actors start in the reverse order, so a stage's consumers are up before its producers.
    stage: int
    enabled: Callable[[Deployment], bool]
    needs: Callable[[Deployment], frozenset[Need]]
    build: Callable[[Resources], list[Actor]]


def _consumer(
    r: Resources,
    name: str,
    topics: list[str],
    group: str,
    *,
    handle: Callable[[list[Message]], Awaitable[None]] | None = None,
    staged: StagedHandler | None = None,
) -> BatchConsumer:
    s = r.settings
    return BatchConsumer(
        name=name, hosts=s.kafka_hosts, topics=topics, group_id=group, batch_size=s.ingestion_batch_size,
        batch_wait_ms=s.ingestion_batch_wait_ms, handle=handle, staged=staged, drain_on_stop=s.drain_on_stop,
    )  # fmt: skip


def _ingestion(r: Resources) -> list[Actor]:
    s, pg, redis, runtime = r.settings, r.postgres, r.redis, r.runtime
    store = TeamStore(pg=pg)
    teams = TeamCache(fetch_by_tokens=store.by_tokens, fetch_by_ids=store.by_ids, ttl_seconds=s.team_cache_ttl_seconds)
    sink: Sink = (
        DirectSink(clickhouse=r.clickhouse)
        if r.deployment.sink == "direct"
        else KafkaSink(producer=r.producer, topics=row_topics(s))
    )
    handler = IngestionHandler(
        pipeline=IngestionPipeline(
            teams=teams,
            tasks_per_worker=s.tasks_per_worker,
            persons=PersonsStep(store=PersonStore(pg=pg), shared=SharedStates(redis=redis)),
            groups=GroupsStep(store=GroupStore(pg=pg)),
            plugins=PluginsStep(runtime=runtime),
        ),
        sink=sink,
        producer=r.producer,
        dead_letter_topic=s.kafka_dead_letter_topic,
        # the direct sink writes no events topic: events for on_event/export_events go there too
        async_events=(s.clickhouse_json_events_kafka_topic, runtime) if r.deployment.sink == "direct" else None,
    )
    return [_consumer(r, "ingestion", [s.kafka_consumption_topic], s.kafka_consumer_group, staged=handler)]


def _workers(r: Resources) -> list[Actor]:
    s = r.settings
    child_env = {**os.environ, **s.as_environ(), "INGESTION_SINK": r.deployment.sink}
    stop_timeout = s.drain_timeout_seconds if s.drain_on_stop else s.shutdown_timeout_seconds
    return [WorkerPool(count=r.deployment.workers, environ=child_env, stop_timeout=stop_timeout + 10)]


def _writer(r: Resources) -> list[Actor]:
    s = r.settings
    tables = {topic: table for table, topic in row_topics(s).items()}
    handler = WriterHandler(
        sink=DirectSink(clickhouse=r.clickhouse), tables=tables, producer=r.producer,
        dead_letter_topic=s.kafka_dead_letter_topic,
    )  # fmt: skip
    return [_consumer(r, "writer", list(tables), s.kafka_writer_group, handle=handler)]


def _async_hooks(r: Resources) -> list[Actor]:
    s = r.settings
    handler = AsyncHandler(runtime=r.runtime, jobs=JobQueue(pg=r.postgres))
    return [_consumer(r, "async", [s.clickhouse_json_events_kafka_topic], s.kafka_async_group, handle=handler)]


def _http(r: Resources) -> list[Actor]:
    s = r.settings
    app = App(state=r.state, clickhouse=r.clickhouse_if_open, admin_token=s.plugin_server_admin_token)
    return [HttpServer(app=app, host=s.http_host, port=s.http_port)]


def _ingests(d: Deployment) -> bool:
    return d.mode in ("all", "ingestion")


_PLUGIN_HOST = frozenset({Need.PRODUCER, Need.POSTGRES, Need.REDIS, Need.PLUGINS})

INGESTION = Component(
    name="ingestion",
    stage=0,
    enabled=lambda d: _ingests(d) and not d.workers,
    needs=lambda d: _PLUGIN_HOST | ({Need.CLICKHOUSE} if d.sink == "direct" else set()),
    build=_ingestion,
)
WORKERS = Component(
    name="workers",
    stage=0,
    enabled=lambda d: _ingests(d) and d.workers > 0,
    needs=lambda d: frozenset(),  # the worker processes open their own
    build=_workers,
)
WRITER = Component(
    name="writer",
    stage=1,
    enabled=lambda d: d.mode == "writer" or (d.mode == "all" and d.sink == "kafka"),
    needs=lambda d: frozenset({Need.CLICKHOUSE, Need.PRODUCER}),
    build=_writer,
)
ASYNC_HOOKS = Component(
    name="async",
    stage=2,
    enabled=lambda d: d.mode in ("all", "async"),
    # A separate async process writes its plugins' logs itself when it may open ClickHouse.
    needs=lambda d: (
        _PLUGIN_HOST
        | ({Need.CLICKHOUSE} if d.mode == "async" and d.sink == "direct" and not d.embedded_clickhouse else set())
    ),
    build=_async_hooks,
)

# Health, readiness, metrics and the query endpoint: up first, down last (stop stage 9), so
# probes see a process that is starting or draining; it queries whatever engine is open.
HTTP = Component(name="http", stage=9, enabled=lambda d: True, needs=lambda d: frozenset(), build=_http)

# Every capability, in the order their actors are listed; a mode runs those of its components
# that are enabled for the deployment. Modes with none say "not yet" (their issues are open).
MODES: dict[str, tuple[Component, ...]] = {
    "all": (INGESTION, WORKERS, WRITER, ASYNC_HOOKS, HTTP),
    "ingestion": (INGESTION, WORKERS, HTTP),
    "writer": (WRITER, HTTP),
    "async": (ASYNC_HOOKS, HTTP),
    "jobs": (),
    "scheduler": (),
    "api": (),
}


@dataclass(frozen=True)
class Plan:
    """What a process runs (pure, table-tested): its components and the resources they need."""

    deployment: Deployment
    components: tuple[Component, ...]
    needs: frozenset[Need]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.components)


def plan(settings: Settings) -> Plan:
    deployment = Deployment.of(settings)
    components = tuple(c for c in MODES[deployment.mode] if c.enabled(deployment))
    needs = frozenset().union(*(c.needs(deployment) for c in components))
    return Plan(deployment=deployment, components=components, needs=needs)


def runnable(mode: str) -> bool:
    """Whether `mode` has any capability built yet."""
    return bool(MODES[mode])
