"""The shared resources of one process, opened once for whichever components need them.

`open_resources` opens exactly the needed ones with `async with`, in a fixed order, checks the
schemas of the databases it opened, and closes everything on every exit path. The plugin host
(the runtime, its log shipper and the job-queue monitor) comes as `services`: actors the server
starts before any component and stops after all of them.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import trio

from jobs.monitor import JobQueueMonitor
from plugin_server.app.config import Settings
from plugin_server.app.deployment import Deployment
from plugin_server.app.topics import row_topics
from plugin_server.core import logs
from plugin_server.core.health import ServerState
from plugin_server.plugins.logs import LogShipper, PluginLogs
from plugin_server.plugins.runtime import PluginRuntime
from plugin_server.storage.clickhouse import ClickHouse, open_clickhouse
from plugin_server.storage.jobs import JobQueue
from plugin_server.storage.kafka.producer import KafkaProducer, open_producer
from plugin_server.storage.migrations import SchemaOutdated, migrate_clickhouse, pending_clickhouse, pending_postgres
from plugin_server.storage.plugins import PluginStore
from plugin_server.storage.postgres import Postgres, open_postgres
from plugin_server.storage.redis import Redis, open_redis
from plugin_server.storage.sinks import DirectSink, KafkaSink, Sink

log = logs.get(__name__)


class Need(enum.Enum):
    """A shared resource a component uses; each is opened once per process, whoever needs it."""

    CLICKHOUSE = "clickhouse"
    PRODUCER = "producer"
    POSTGRES = "postgres"
    REDIS = "redis"
    PLUGINS = "plugins"  # the plugin runtime, its log shipper and the job-queue monitor


class Service(Protocol):
    """An actor the components use; it runs until cancelled."""

    async def run(self, *, task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED) -> None: ...


class NotOpened(LookupError):
    """A component used a resource it did not name in its needs: a bug in the component table."""

    def __init__(self, need: Need) -> None:
        super().__init__(f"{need.value} was not opened: add Need.{need.name} to the component's needs")


@dataclass
class Resources:
    settings: Settings
    deployment: Deployment
    state: ServerState
    _clickhouse: ClickHouse | None = None
    _producer: KafkaProducer | None = None
    _postgres: Postgres | None = None
    _redis: Redis | None = None
    _runtime: PluginRuntime | None = None
    services: list[Service] = field(default_factory=list)

    @property
    def clickhouse(self) -> ClickHouse:
        return _opened(self._clickhouse, Need.CLICKHOUSE)

    @property
    def clickhouse_if_open(self) -> ClickHouse | None:
        """For the HTTP query endpoint, which serves whatever engine this process holds."""
        return self._clickhouse

    @property
    def producer(self) -> KafkaProducer:
        return _opened(self._producer, Need.PRODUCER)

    @property
    def postgres(self) -> Postgres:
        return _opened(self._postgres, Need.POSTGRES)

    @property
    def redis(self) -> Redis:
        return _opened(self._redis, Need.REDIS)

    @property
    def runtime(self) -> PluginRuntime:
        return _opened(self._runtime, Need.PLUGINS)


T = TypeVar("T")


def _opened(value: T | None, need: Need) -> T:
    if value is None:
        raise NotOpened(need)
    return value


@contextlib.asynccontextmanager
async def open_resources(
    settings: Settings, deployment: Deployment, needs: frozenset[Need], state: ServerState
) -> AsyncIterator[Resources]:
    s = settings
    r = Resources(settings=s, deployment=deployment, state=state)
    async with contextlib.AsyncExitStack() as stack:
        if Need.CLICKHOUSE in needs:
            r._clickhouse = await stack.enter_async_context(open_clickhouse(s.clickhouse_url))
            await _check_clickhouse_schema(r._clickhouse)
        if Need.PRODUCER in needs:
            r._producer = await stack.enter_async_context(open_producer(hosts=s.kafka_hosts, client_id="plugin-server"))
        if Need.POSTGRES in needs:
            r._postgres = await stack.enter_async_context(open_postgres(s.database_url))
            if pending := await pending_postgres(r._postgres):
                raise SchemaOutdated("Postgres", pending)
        if Need.REDIS in needs:
            r._redis = await stack.enter_async_context(open_redis(s.redis_url))
        if Need.PLUGINS in needs:
            r._runtime = _plugin_host(r)
        yield r


def _plugin_host(r: Resources) -> PluginRuntime:
    """The plugin runtime, and the services around it: its log shipper and the job-queue monitor."""
    s = r.settings
    plugin_logs = PluginLogs()
    runtime = PluginRuntime(
        store=PluginStore(pg=r.postgres), redis=r.redis, logs=plugin_logs, task_timeout=s.task_timeout,
        threads=s.plugin_threads, allow_private_fetch=s.plugin_fetch_allow_private,
        jobs=JobQueue(pg=r.postgres), channel=s.plugins_reload_pubsub_channel,
    )  # fmt: skip
    log_sink: Sink = (
        DirectSink(clickhouse=r._clickhouse)
        if r._clickhouse is not None
        else KafkaSink(producer=r.producer, topics=row_topics(s))
    )
    r.services += [LogShipper(buffer=plugin_logs, sink=log_sink), runtime, JobQueueMonitor(pg=r.postgres)]
    r.state.checks["plugins"] = lambda: runtime.healthy
    return runtime


async def _check_clickhouse_schema(clickhouse: ClickHouse) -> None:
    """An embedded engine can only be migrated by the process that holds it: this one."""
    if clickhouse.embedded:
        if applied := await migrate_clickhouse(clickhouse):
            log.info("migrated the embedded ClickHouse", applied=applied)
    elif pending := await pending_clickhouse(clickhouse):
        raise SchemaOutdated("ClickHouse", pending)
