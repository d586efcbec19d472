"""The plugin runtime of one process: which plugin configs run for which team, loaded, set up,
called, reloaded and torn down (REFERENCE.md 6.2-6.5, 6.8).

- `run` (an actor) loads every active config before it reports started, then reloads on each
  message on the Redis channel `reload-plugins` and retries failed `setup_plugin`s with backoff
  (`PLUGIN_SETUP_RETRY`: 3 s * 2^(attempt-1), at most 10 setups, then the config is disabled, as
  PostHog).
- A reload builds a new generation of chains (configs whose config or plugin `updated_at` did
  not change keep their instance); batches pin the generation they started with (`pinned`), so
  a batch in flight finishes with the plugins it began with: no event is dropped or processed
  twice. Replaced instances are torn down once no batch uses their generation.
- `process_events` runs a team's chain over events in a worker thread (plugin_server/plugins/chain.py), bounded by
  `threads`, under a watchdog: a call stuck past its timeout in C code (where the sandbox's
  ticks cannot interrupt it) is abandoned, its config disabled with the reason, and the events
  rerun without it. Abandoned threads cannot be killed; past `threads // 2` of them the runtime
  reports itself unhealthy so that the supervisor restarts the process.
- A service outage met inside meta fails the call with that retryable error however the plugin
  handled it (plugin_server/plugins/meta/outage.py): `process_events` and `run_async` raise it, so
  the batch is retried; in `setup_plugin` it is a failed setup, retried with the same backoff.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import time
import uuid as uuid_lib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import outcome
import trio
from prometheus_client import Counter, Gauge

from plugin_server.core import logs
from plugin_server.core.errors import PluginServerError
from plugin_server.core.retry import EXPORT_RETRY, PLUGIN_SETUP_RETRY
from plugin_server.plugins.chain import ChainReport, Progress, error_record, run_chain
from plugin_server.plugins.hooks import (
    EXPORT_RETRY_JOB,
    AsyncReport,
    export_batches,
    run_export,
    run_on_event,
)
from plugin_server.plugins.loaded import LoadedConfig
from plugin_server.plugins.logs import LogTarget, PluginLogs
from plugin_server.plugins.meta import Meta
from plugin_server.plugins.meta.cache import Cache
from plugin_server.plugins.meta.fetch import Fetch
from plugin_server.plugins.meta.jobs import Jobs
from plugin_server.plugins.meta.logger import Logger
from plugin_server.plugins.meta.metrics import Metrics
from plugin_server.plugins.meta.storage import Storage
from plugin_server.plugins.meta.utils import Cursor, Utils
from plugin_server.storage.jobs import JobQueueLike
from plugin_server.storage.plugins import ConfigRow, PluginStoreLike
from plugin_server.storage.redis import RedisPluginsLike
from vm import config_schema
from vm.errors import SandboxError
from vm.sandbox import CompiledPlugin, PluginInstance, compile_plugin

log = logs.get(__name__)

RELOAD_CHANNEL = "reload-plugins"
# A call past its timeout by this much is stuck in C code: the sandbox's ticks would have stopped it.
STUCK_GRACE_SECONDS = 5.0
WATCHDOG_INTERVAL = 0.25
# Events per thread hand-off: large enough that the hand-off cost vanishes, small enough that a
# batch's events spread over the threads.
CHUNK_EVENTS = 256
# Reconnecting to the reload channel after Redis failed.
RESUBSCRIBE_SECONDS = 2.0

PLUGIN_ERRORS = Counter("plugin_errors_total", "Plugin calls that failed.", ["plugin_config_id", "method"])
PLUGIN_DISABLED = Counter("plugin_configs_disabled_total", "Plugin configs this server disabled.", ["reason"])
EXPORT_UNDELIVERED = Counter(
    "plugin_export_undelivered_total", "Events export_events gave up on.", ["plugin_config_id"]
)
ABANDONED_THREADS = Gauge("plugin_abandoned_threads", "Plugin threads stuck in C code and abandoned.")


@dataclass(eq=False)
class Generation:
    """The chains of one reload; counts the batches using it."""

    chains: dict[int, list[LoadedConfig]]
    users: int = 0
    idle: trio.Event = field(default_factory=trio.Event)


class PluginRuntime:
    def __init__(
        self,
        *,
        store: PluginStoreLike,
        redis: RedisPluginsLike | None,
        logs: PluginLogs,
        task_timeout: float,
        threads: int,
        allow_private_fetch: bool = False,
        jobs: JobQueueLike | None = None,
        channel: str = RELOAD_CHANNEL,
    ) -> None:
        self._store = store
        self._redis = redis
        self._logs = logs
        self._timeout = task_timeout
        self._threads = threads
        self._limiter = trio.CapacityLimiter(threads)
        self._allow_private_fetch = allow_private_fetch
        self._jobs = jobs
        self._channel = channel
        self._generation = Generation({})
        self._loaded: dict[int, LoadedConfig] = {}
        self._reload_lock = trio.Lock()
        self._compiled: dict[tuple[int, Any], CompiledPlugin] = {}
        self.abandoned_threads = 0

    # -- the actor -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                if self._redis is not None:
                    await nursery.start(self._listen)
                await self.reload()
                nursery.start_soon(self._retry_setups)
                task_status.started()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(self._timeout + 1):
                await self._teardown(list(self._loaded.values()))

    @property
    def healthy(self) -> bool:
        return self.abandoned_threads <= self._threads // 2

    async def _listen(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Reload on every message on the channel; after a Redis failure, resubscribe and reload
        (messages published meanwhile were missed)."""
        assert self._redis is not None
        started = False
        while True:
            try:
                async with self._redis.subscribe(self._channel) as subscription:
                    if not started:
                        started = True
                        task_status.started()
                    else:
                        await self.reload()
                    while True:
                        if await subscription.next_message(timeout=1.0) is not None:
                            log.info("reload-plugins received")
                            await self.reload()
            except PluginServerError as exc:
                if not exc.retryable:
                    raise
                log.warning("plugin reload channel unavailable; retrying", error=str(exc))
                if not started:
                    started = True
                    task_status.started()
                await trio.sleep(RESUBSCRIBE_SECONDS)

    # -- loading ---------------------------------------------------------------------------

    async def reload(self) -> None:
        """Load what changed, swap generations, tear down what was replaced once unused."""
        async with self._reload_lock:
            rows = await self._store.active_configs()
            keep: dict[int, LoadedConfig] = {}
            for row in rows:
                current = self._loaded.get(row.config_id)
                if current is not None and current.row.revision == row.revision and not current.disabled:
                    keep[row.config_id] = current
                    continue
                loaded = await self._load(row)
                if loaded is not None:
                    keep[row.config_id] = loaded
            chains: dict[int, list[LoadedConfig]] = {}
            for loaded in keep.values():
                chains.setdefault(loaded.row.team_id, []).append(loaded)
            for chain in chains.values():
                chain.sort(key=lambda c: (c.row.order, c.row.config_id))
            old, replaced = self._generation, [c for i, c in self._loaded.items() if keep.get(i) is not c]
            self._generation, self._loaded = Generation(chains), keep
            log.info("plugins loaded", configs=len(keep), teams=len(chains), replaced=len(replaced))
            if old.users:
                await old.idle.wait()
            await self._teardown(replaced)

    async def _load(self, row: ConfigRow) -> LoadedConfig | None:
        target = LogTarget(row.team_id, row.plugin_id, row.config_id, str(uuid_lib.uuid4()), row.log_level)
        try:
            fields = config_schema.parse_schema(row.config_schema)
            config = config_schema.validate(fields, row.config, attachments=frozenset(row.attachments))
            compiled = self._compile(row)
            # the module's print output: a writer for this config's target, not a closure over the
            # runtime (which plugin code could otherwise find in its call's budget)
            console = functools.partial(self._logs.write, target, "CONSOLE")
            instance = await self._in_thread(
                functools.partial(compiled.instantiate, timeout=self._timeout, log=console)
            )
        except (PluginServerError, SandboxError) as exc:
            await self._config_failed(row, target, f"could not load: {exc}", exc)
            return None
        loaded = LoadedConfig(
            row, instance, self._meta(row, config, target, instance), target, self._logs, self._timeout,
            host_config=config,
        )  # fmt: skip
        await self._best_effort(
            "record plugin capabilities",
            row.config_id,
            lambda: self._store.set_capabilities(row.plugin_id, instance.capabilities()),
        )
        await self._setup(loaded)
        return loaded

    def _compile(self, row: ConfigRow) -> CompiledPlugin:
        """Compile once per plugin revision (configs of one plugin share the compiled code)."""
        key = (row.plugin_id, row.revision[1] if row.revision else None)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = compile_plugin(
                {n: s for n, s in row.sources.items() if n.endswith(".py")}, main=_main_of(row)
            )
        return compiled

    def _meta(self, row: ConfigRow, config: dict[str, Any], target: LogTarget, instance: PluginInstance) -> Meta:
        return Meta(
            config=config,
            attachments=row.attachments,
            storage=Storage(store=self._store, config_id=row.config_id),
            cache=Cache(redis=self._redis, config_id=row.config_id) if self._redis is not None else None,
            logger=Logger(write=functools.partial(self._logs.write, target)),
            metrics=Metrics(config_id=row.config_id),
            fetch=Fetch(allow_private=self._allow_private_fetch),
            jobs=Jobs(
                names=frozenset(instance.exports.get("jobs", {})),
                queue=self._jobs,
                team_id=row.team_id,
                config_id=row.config_id,
            ),
            utils=Utils(cursor=Cursor(store=self._store, config_id=row.config_id)),
        )

    async def _setup(self, loaded: LoadedConfig) -> None:
        setup = loaded.instance.exports.get("setup_plugin")
        if setup is None:
            loaded.ready = True
            loaded.log("SYSTEM", "INFO", f"Plugin loaded (instance ID {loaded.target.instance_id}).")
            return
        loaded.setup_attempts += 1
        try:
            await self._call(loaded, setup, loaded.meta)
        except StuckCall:
            self._abandoned()
            await self._disable(loaded, "setup_plugin did not return (stuck outside Python)")
            return
        except SandboxError as exc:
            await self._setup_failed(loaded, exc)
            return
        except PluginServerError as exc:
            if not exc.retryable:
                raise
            await self._setup_failed(loaded, exc)  # a service outage met inside meta: retried later
            return
        loaded.ready = True
        loaded.log("SYSTEM", "INFO", f"Plugin loaded (instance ID {loaded.target.instance_id}).")
        await self._record_errors({loaded.row.config_id: None})

    async def _setup_failed(self, loaded: LoadedConfig, exc: Exception) -> None:
        PLUGIN_ERRORS.labels(str(loaded.row.config_id), "setup_plugin").inc()
        attempts = loaded.setup_attempts
        delay = PLUGIN_SETUP_RETRY.decide(exc, attempts)
        if delay is None:
            await self._disable(loaded, f"setup_plugin failed {attempts} times: {exc}")
            return
        loaded.next_setup = trio.current_time() + delay
        loaded.log("PLUGIN", "ERROR", f"setup_plugin failed (attempt {attempts}), retrying in {delay:g} s: {exc}")
        await self._record_errors({loaded.row.config_id: error_record(exc)})

    async def _retry_setups(self) -> None:
        while True:
            await trio.sleep(1.0)
            now = trio.current_time()
            for loaded in list(self._loaded.values()):
                if not loaded.ready and not loaded.disabled and loaded.next_setup <= now:
                    await self._setup(loaded)

    async def _config_failed(self, row: ConfigRow, target: LogTarget, message: str, exc: Exception) -> None:
        PLUGIN_ERRORS.labels(str(row.config_id), "load").inc()
        self._logs.write(target, "SYSTEM", "ERROR", message)
        log.warning("plugin config not loaded", plugin_config_id=row.config_id, error=str(exc))
        await self._record_errors({row.config_id: error_record(exc)})

    async def _disable(self, loaded: LoadedConfig, reason: str) -> None:
        loaded.disabled = True
        loaded.log("SYSTEM", "ERROR", f"Disabling plugin config {loaded.label}: {reason}")
        log.warning("plugin config disabled", plugin_config_id=loaded.row.config_id, reason=reason)
        PLUGIN_DISABLED.labels(reason.split(":", 1)[0][:60]).inc()
        config_id = loaded.row.config_id
        await self._best_effort("disable the plugin config", config_id, lambda: self._store.disable(config_id))
        await self._record_errors({config_id: {"message": reason, "time": _now_iso(), "name": "Disabled"}})

    async def _teardown(self, configs: list[LoadedConfig]) -> None:
        for loaded in configs:
            teardown = loaded.instance.exports.get("teardown_plugin")
            if teardown is None or not loaded.ready:
                continue
            try:
                await self._call(loaded, teardown, loaded.meta)
            except StuckCall:
                self._abandoned()
                loaded.log("SYSTEM", "ERROR", "teardown_plugin did not return (stuck outside Python); abandoned")
            except SandboxError as exc:
                loaded.log("PLUGIN", "ERROR", f"teardown_plugin failed: {exc}")
            except PluginServerError as exc:
                if not exc.retryable:
                    raise
                loaded.log("PLUGIN", "ERROR", f"teardown_plugin failed: {exc}")  # a service outage

    # -- calling -----------------------------------------------------------------------------

    async def _in_thread(self, fn: Callable[[], Any]) -> Any:
        return await trio.to_thread.run_sync(fn, limiter=self._limiter)

    async def _call(self, loaded: LoadedConfig, fn: Any, *args: Any) -> Any:
        """One lifecycle call (setup, teardown) in a thread, under the watchdog."""
        progress = Progress(loaded, time.monotonic())
        return await self._watched(functools.partial(loaded.run, fn, *args), progress)

    async def _watched(self, fn: Callable[[], Any], progress: Progress) -> Any:
        """Run `fn` in a thread; abandon it if the call in progress is stuck (StuckCall)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watchdog, progress, nursery.cancel_scope)
            # captured, so that the thread's own error leaves unwrapped (not in an ExceptionGroup)
            result = await outcome.acapture(
                functools.partial(trio.to_thread.run_sync, fn, limiter=self._limiter, abandon_on_cancel=True)
            )
            nursery.cancel_scope.cancel()
        if isinstance(result, outcome.Error) and isinstance(result.error, trio.Cancelled):
            raise StuckCall(progress.config)  # the watchdog cancelled it (outer cancels propagate above)
        return result.unwrap()

    async def _watchdog(self, progress: Progress, scope: trio.CancelScope) -> None:
        while True:
            await trio.sleep(WATCHDOG_INTERVAL)
            config = progress.config
            if config is not None and time.monotonic() - progress.since > config.timeout + STUCK_GRACE_SECONDS:
                scope.cancel()
                return

    def _abandoned(self) -> None:
        self.abandoned_threads += 1
        ABANDONED_THREADS.set(self.abandoned_threads)
        if not self.healthy:
            log.error("too many plugin threads stuck; the process needs a restart", abandoned=self.abandoned_threads)

    @contextlib.asynccontextmanager
    async def pinned(self) -> AsyncIterator[Generation]:
        """The current generation, kept alive (not torn down) until the block ends."""
        generation = self._generation
        generation.users += 1
        try:
            yield generation
        finally:
            generation.users -= 1
            if not generation.users and generation is not self._generation:
                generation.idle.set()

    async def process_events(
        self, chain: list[LoadedConfig], events: list[dict[str, Any]]
    ) -> list[dict[str, Any] | None]:
        """`events` (of one team, in order) through `chain`; None where dropped."""
        report = ChainReport()
        while True:
            progress = Progress()
            try:
                results: list[dict[str, Any] | None] = await self._watched(
                    functools.partial(run_chain, chain, events, progress, report), progress
                )
                break
            except StuckCall as stuck:
                self._abandoned()
                if stuck.config is None:
                    raise
                stuck.config.disabled = True
                report.disable[stuck.config.row.config_id] = (
                    f"a call did not return within {stuck.config.timeout + STUCK_GRACE_SECONDS:g} s (stuck outside Python)"
                )
                # rerun the chunk without the stuck config (plugins see these events again)
        await self._persist(chain, report)
        return results

    def any_async(self) -> bool:
        """Whether any loaded config has `on_event` or `export_events`."""
        return any(_async_capable(c) for c in self._loaded.values())

    def wants_async(self, team_id: int) -> bool:
        """Whether any config of the team has `on_event` or `export_events`."""
        return any(_async_capable(c) for c in self._generation.chains.get(team_id, ()))

    async def run_async(self, events: list[dict[str, Any]], jobs: JobQueueLike | None) -> AsyncReport:
        """Processed events (of any teams) through every ready config's on_event and
        export_events, configs in parallel; a RetryError'd export is enqueued for a retry."""
        report = AsyncReport()
        by_team: dict[int, list[dict[str, Any]]] = {}
        for event in events:
            by_team.setdefault(event["team_id"], []).append(event)
        async with self.pinned() as generation, trio.open_nursery() as nursery:
            for team_id, team_events in by_team.items():
                for config in generation.chains.get(team_id, ()):
                    if config.ready and not config.disabled and _async_capable(config):
                        nursery.start_soon(self._run_async_config, config, team_events, report)
        for config, batch in report.retries:
            await self._enqueue_export_retry(config, batch, jobs, retries_so_far=0)
        for config_id in report.errors:
            PLUGIN_ERRORS.labels(str(config_id), "async").inc()
        await self._record_errors(report.errors)
        return report

    async def _run_async_config(self, config: LoadedConfig, events: list[dict[str, Any]], report: AsyncReport) -> None:
        exports = config.instance.exports
        try:
            if "on_event" in exports:
                progress = Progress()
                await self._watched(functools.partial(run_on_event, config, events, progress, report), progress)
            if "export_events" in exports:
                for batch in export_batches(config.host_config, events):
                    progress = Progress()
                    await self._watched(functools.partial(run_export, config, batch, progress, report), progress)
        except StuckCall:
            self._abandoned()
            await self._disable(config, "an on_event/export_events call did not return (stuck outside Python)")

    async def _enqueue_export_retry(
        self, config: LoadedConfig, batch: list[dict[str, Any]], jobs: JobQueueLike | None, *, retries_so_far: int
    ) -> None:
        delay = EXPORT_RETRY.delay(retries_so_far + 1)  # attempts: the calls that failed so far
        if delay is None or jobs is None:
            EXPORT_UNDELIVERED.labels(str(config.row.config_id)).inc(len(batch))
            config.log("SYSTEM", "ERROR", f"{len(batch)} events not exported: no retries left")
            return
        await jobs.enqueue_plugin_job(
            team_id=config.row.team_id, plugin_config_id=config.row.config_id, name=EXPORT_RETRY_JOB,
            payload={"events": batch, "retries_so_far": retries_so_far + 1},
            run_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay),
        )  # fmt: skip

    async def _persist(self, chain: list[LoadedConfig], report: ChainReport) -> None:
        by_id = {c.row.config_id: c for c in chain}
        for config_id, count in report.error_counts.items():
            PLUGIN_ERRORS.labels(str(config_id), "process_event").inc(count)
        await self._record_errors(report.errors)
        for config_id, reason in report.disable.items():
            await self._disable(by_id[config_id], reason)

    async def _record_errors(self, errors: Mapping[int, dict[str, Any] | None]) -> None:
        """The last error of each config on `posthog_pluginconfig.error` (None clears it)."""
        for config_id, error in errors.items():
            await self._best_effort(
                "record the plugin error", config_id, functools.partial(self._store.set_error, config_id, error)
            )

    @staticmethod
    async def _best_effort(what: str, config_id: int, write: Callable[[], Awaitable[Any]]) -> None:
        """A bookkeeping write to Postgres that must not fail the batch or the load: the event
        it records is already logged and counted. A failure is logged, not raised."""
        try:
            await write()
        except PluginServerError as exc:
            log.warning(f"could not {what}", plugin_config_id=config_id, error=str(exc))


def _async_capable(config: LoadedConfig) -> bool:
    exports = config.instance.exports
    return "on_event" in exports or "export_events" in exports


class StuckCall(PluginServerError):
    """A plugin call did not return long after its timeout; its thread was abandoned."""

    def __init__(self, config: LoadedConfig | None) -> None:
        super().__init__(f"plugin call stuck: {config.label if config else 'unknown'}")
        self.config = config


def _main_of(row: ConfigRow) -> str:
    """plugin.json's `main` (stored with the sources), else main.py."""
    try:
        main = json.loads(row.sources.get("plugin.json") or "{}").get("main")
    except (ValueError, AttributeError):
        main = None
    return main if isinstance(main, str) and main.endswith(".py") else "main.py"


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()
