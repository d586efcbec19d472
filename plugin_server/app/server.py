"""The server: opens what the chosen mode needs, starts its actors, and stops them in order.

Resources are opened with `async with` and closed on every exit path. Actors are started with
`nursery.start`, so `run` reports ready only when every consumer is running and the HTTP port is
bound. With WORKER_CONCURRENCY > 1, ingestion runs in that many child processes (workers/pool.py)
instead of in this one. Stop (`request_stop`, called on SIGTERM/SIGINT): consumers finish the batch
in flight, commit and close, ingestion before the writer so the writer still takes what ingestion
produced last; with DRAIN_ON_STOP each first consumes until its lag is zero (the embedded broker
keeps messages only in memory). Each stage is bounded by a deadline; what a deadline cuts off stays
uncommitted and is re-read on the next start.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import trio

from jobs.monitor import JobQueueMonitor
from plugin_server.app.config import Settings
from plugin_server.app.topics import row_topics
from plugin_server.core import logs
from plugin_server.core.health import ServerState
from plugin_server.http.server import App, run_http
from plugin_server.ingestion.groups import GroupsStep
from plugin_server.ingestion.person_cache import SharedStates
from plugin_server.ingestion.persons import PersonsStep
from plugin_server.ingestion.pipeline import IngestionPipeline
from plugin_server.ingestion.plugins import PluginsStep
from plugin_server.ingestion.teams import TeamCache
from plugin_server.plugins.logs import LogShipper, PluginLogs
from plugin_server.plugins.runtime import PluginRuntime
from plugin_server.storage.clickhouse import ClickHouse, open_clickhouse
from plugin_server.storage.groups import GroupStore
from plugin_server.storage.jobs import JobQueue
from plugin_server.storage.kafka.producer import open_producer
from plugin_server.storage.migrations import SchemaOutdated, migrate_clickhouse, pending_clickhouse, pending_postgres
from plugin_server.storage.persons import PersonStore
from plugin_server.storage.plugins import PluginStore
from plugin_server.storage.postgres import open_postgres
from plugin_server.storage.redis import open_redis
from plugin_server.storage.sinks import DirectSink, KafkaSink
from plugin_server.storage.teams import TeamStore
from workers.async_handler import AsyncHandler
from workers.consumer import BatchConsumer
from workers.ingestion import IngestionHandler
from workers.pool import WorkerPool
from workers.writer import WriterHandler

log = logs.get(__name__)

# How often a pool worker checks that its parent is alive: a second of orphanhood is harmless.
PARENT_POLL_SECONDS = 1.0

# Modes whose capability exists today; the others are named so the CLI can say "not yet".
RUNNABLE_MODES = ("all", "ingestion", "writer", "async")


@dataclass(frozen=True)
class Plan:
    """Which actors this process runs, derived from the settings alone (pure, tested)."""

    ingestion: bool  # an ingestion consumer in this process
    workers: int  # ingestion worker processes started by this one (0: none)
    sink: str  # the sink ingestion uses, here or in the workers
    writer: bool
    opens_clickhouse: bool
    async_handlers: bool = False  # on_event / export_events on written events, in this process


def plan(settings: Settings) -> Plan:
    mode = settings.plugin_server_mode
    ingests = mode in ("all", "ingestion")
    workers = settings.worker_concurrency if ingests and settings.worker_concurrency > 1 else 0
    # chDB admits one process: several workers on it must hand rows to a writer through Kafka.
    embedded = settings.clickhouse_url.startswith("chdb:")
    sink = "kafka" if workers and embedded else settings.ingestion_sink
    writer = mode == "writer" or (mode == "all" and sink == "kafka")
    in_process = ingests and not workers
    async_handlers = mode in ("all", "async")
    # A separate async process writes its plugins' logs itself when it may open ClickHouse.
    async_inserts = mode == "async" and sink == "direct" and not embedded
    return Plan(
        ingestion=in_process,
        workers=workers,
        sink=sink,
        writer=writer,
        opens_clickhouse=writer or (in_process and sink == "direct") or async_inserts,
        async_handlers=async_handlers,
    )


@dataclass(frozen=True)
class ServerHandle:
    http_port: int
    state: ServerState


class Server:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._drain = settings.drain_on_stop
        self._stop = trio.Event()
        self._scope = trio.CancelScope()
        self.state = ServerState(max_stale_seconds=settings.healthcheck_max_stale_seconds)

    @property
    def settings(self) -> Settings:
        return self._settings

    def request_stop(self) -> None:
        """Stop gracefully; during start-up, when nothing has been consumed yet, stop at once."""
        self.state.stopping = True
        self._stop.set()
        if not self.state.ready:
            self._scope.cancel()

    async def run(self, *, task_status: trio.TaskStatus[ServerHandle] = trio.TASK_STATUS_IGNORED) -> None:
        with self._scope:
            await self._run(task_status)
        log.info("server stopped")

    async def _run(self, task_status: trio.TaskStatus[ServerHandle]) -> None:
        s = self._settings
        p = plan(s)
        async with contextlib.AsyncExitStack() as stack:
            clickhouse = (
                await stack.enter_async_context(open_clickhouse(s.clickhouse_url)) if p.opens_clickhouse else None
            )
            if clickhouse is not None:
                await self._check_clickhouse_schema(clickhouse)
            producer = await stack.enter_async_context(open_producer(hosts=s.kafka_hosts, client_id="plugin-server"))
            stages: list[list[BatchConsumer | WorkerPool]] = []
            services: list = []  # actors the consumers use; they stop after the consumers
            if p.workers:
                child_env = {**os.environ, **s.as_environ(), "INGESTION_SINK": p.sink}
                pool = WorkerPool(count=p.workers, environ=child_env, stop_timeout=self._stop_timeout() + 10)
                stages.append([pool])
                self.state.consumers.extend(pool.statuses)
            if p.ingestion or p.async_handlers:
                pg = await stack.enter_async_context(open_postgres(s.database_url))
                redis = await stack.enter_async_context(open_redis(s.redis_url))
                if pending := await pending_postgres(pg):
                    raise SchemaOutdated("Postgres", pending)
                runtime = self._plugin_runtime(pg, redis, clickhouse, producer, services)
            if p.ingestion:
                store = TeamStore(pg=pg)
                teams = TeamCache(
                    fetch_by_tokens=store.by_tokens, fetch_by_ids=store.by_ids, ttl_seconds=s.team_cache_ttl_seconds
                )
                sink = (
                    DirectSink(clickhouse=clickhouse)
                    if p.sink == "direct"
                    else KafkaSink(producer=producer, topics=row_topics(s))
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
                    producer=producer,
                    dead_letter_topic=s.kafka_dead_letter_topic,
                    # the direct sink writes no events topic: events for on_event/export_events go there too
                    async_events=(s.clickhouse_json_events_kafka_topic, runtime) if p.sink == "direct" else None,
                )
                stages.append(
                    [self._consumer("ingestion", [s.kafka_consumption_topic], s.kafka_consumer_group, handler)]
                )
            if p.writer:
                tables = {topic: table for table, topic in row_topics(s).items()}
                handler = WriterHandler(
                    sink=DirectSink(clickhouse=clickhouse), tables=tables, producer=producer,
                    dead_letter_topic=s.kafka_dead_letter_topic,
                )  # fmt: skip
                stages.append([self._consumer("writer", list(tables), s.kafka_writer_group, handler)])
            if p.async_handlers:
                handler = AsyncHandler(runtime=runtime, jobs=JobQueue(pg=pg))
                topics = [s.clickhouse_json_events_kafka_topic]
                stages.append([self._consumer("async", topics, s.kafka_async_group, handler)])
            self.state.consumers.extend(c.status for stage in stages for c in stage if isinstance(c, BatchConsumer))

            app = App(state=self.state, clickhouse=clickhouse, admin_token=s.plugin_server_admin_token)
            async with trio.open_nursery() as nursery:
                if s.plugin_server_parent_pid:
                    nursery.start_soon(self._watch_parent, s.plugin_server_parent_pid)
                for service in services:
                    await nursery.start(service.run)
                port = await nursery.start(
                    lambda task_status: run_http(app, host=s.http_host, port=s.http_port, task_status=task_status)
                )
                async with trio.open_nursery() as consumers:
                    for stage in stages:
                        for member in stage:
                            await consumers.start(member.run)
                    self.state.ready = True
                    log.info(
                        "server ready", mode=s.plugin_server_mode, sink=p.sink, workers=p.workers, writer=p.writer,
                        http_port=port,
                    )  # fmt: skip
                    task_status.started(ServerHandle(http_port=port, state=self.state))
                    await self._stop.wait()
                    await self._stop_stages(stages)
                    consumers.cancel_scope.cancel()
                nursery.cancel_scope.cancel()

    def _plugin_runtime(self, pg, redis, clickhouse, producer, services: list) -> PluginRuntime:
        """The plugin runtime and its log shipper (started with the services, before consumers)."""
        s = self._settings
        plugin_logs = PluginLogs()
        runtime = PluginRuntime(
            store=PluginStore(pg=pg), redis=redis, logs=plugin_logs, task_timeout=s.task_timeout,
            threads=s.plugin_threads, allow_private_fetch=s.plugin_fetch_allow_private,
            jobs=JobQueue(pg=pg), channel=s.plugins_reload_pubsub_channel,
        )  # fmt: skip
        log_sink = (
            DirectSink(clickhouse=clickhouse)
            if clickhouse is not None
            else KafkaSink(producer=producer, topics=row_topics(s))
        )
        services.append(LogShipper(buffer=plugin_logs, sink=log_sink))
        services.append(runtime)
        services.append(JobQueueMonitor(pg=pg))
        self.state.checks["plugins"] = lambda: runtime.healthy
        return runtime

    async def _watch_parent(self, parent_pid: int) -> None:
        """A worker whose pool process died (even by SIGKILL) stops gracefully instead of living
        on as an orphan that keeps partitions of the consumer group."""
        while os.getppid() == parent_pid:
            await trio.sleep(PARENT_POLL_SECONDS)
        log.warning("parent process is gone; stopping", parent_pid=parent_pid)
        self.request_stop()

    @staticmethod
    async def _check_clickhouse_schema(clickhouse: ClickHouse) -> None:
        """An embedded engine can only be migrated by the process that holds it: this one."""
        if clickhouse.embedded:
            if applied := await migrate_clickhouse(clickhouse):
                log.info("migrated the embedded ClickHouse", applied=applied)
        elif pending := await pending_clickhouse(clickhouse):
            raise SchemaOutdated("ClickHouse", pending)

    def _consumer(self, name: str, topics: list[str], group: str, handler) -> BatchConsumer:
        s = self._settings
        return BatchConsumer(
            name=name, hosts=s.kafka_hosts, topics=topics, group_id=group, batch_size=s.ingestion_batch_size,
            batch_wait_ms=s.ingestion_batch_wait_ms, handle=handler, drain_on_stop=self._drain,
        )  # fmt: skip

    def _stop_timeout(self) -> float:
        return self._settings.drain_timeout_seconds if self._drain else self._settings.shutdown_timeout_seconds

    async def _stop_stages(self, stages: list[list[BatchConsumer | WorkerPool]]) -> None:
        """Stop stage by stage (ingestion, then the writer that takes what ingestion produced)."""
        timeout = self._stop_timeout()
        for stage in stages:
            for member in stage:
                member.request_stop()
            with trio.move_on_after(timeout) as scope:
                while any(member.running for member in stage):
                    await trio.sleep(0.05)
            if scope.cancelled_caught:
                log.error(
                    "stop deadline hit; unfinished messages stay uncommitted",
                    stage=[type(m).__name__ for m in stage],
                    timeout_s=timeout,
                )
