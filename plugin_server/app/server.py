"""The server: opens what the mode's components need, starts their actors, and stops them in order.

What runs is data (app/components.py): the mode's components that are enabled for the deployment,
and the union of the resources they need (app/resources.py), opened with `async with` and closed
on every exit path. Actors are started with `nursery.start`, so `run` reports ready only when every
consumer is running and the HTTP port is bound. Stop (`request_stop`, called on SIGTERM/SIGINT):
stage by stage (ingestion before the writer, so the writer still takes what ingestion produced
last), each actor is asked to finish the batch in flight, commit and close, and the server waits
for its `stopped` event; with DRAIN_ON_STOP each first consumes until its lag is zero (the embedded
broker keeps messages only in memory). Each stage is bounded by a deadline; what a deadline cuts
off stays uncommitted and is re-read on the next start.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import trio

from plugin_server.app.components import Actor, Component, plan
from plugin_server.app.config import Settings
from plugin_server.app.resources import Resources, open_resources
from plugin_server.core import logs
from plugin_server.core.health import ServerState
from plugin_server.http.server import HttpServer

log = logs.get(__name__)

# How often a pool worker checks that its parent is alive: a second of orphanhood is harmless.
PARENT_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class ServerHandle:
    http_port: int
    state: ServerState


class Server:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
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
        s = self._settings
        p = plan(s)
        with self._scope:
            async with open_resources(s, p.deployment, p.needs, self.state) as resources:
                stages = _stages(p.components, resources)
                for stage in stages:
                    for actor in stage:
                        self.state.consumers.extend(actor.statuses)
                async with trio.open_nursery() as nursery:
                    if s.plugin_server_parent_pid:
                        nursery.start_soon(self._watch_parent, s.plugin_server_parent_pid)
                    for service in resources.services:
                        await nursery.start(service.run)
                    async with trio.open_nursery() as actors:
                        port = None
                        for stage in reversed(stages):  # the last to stop starts first
                            for actor in stage:
                                started = await actors.start(actor.run)
                                if isinstance(started, HttpServer):
                                    port = started.port
                        assert port is not None, "every runnable mode serves HTTP"
                        self.state.ready = True
                        log.info(
                            "server ready", mode=s.plugin_server_mode, components=p.names, sink=p.deployment.sink,
                            workers=p.deployment.workers, http_port=port,
                        )  # fmt: skip
                        task_status.started(ServerHandle(http_port=port, state=self.state))
                        await self._stop.wait()
                        await self._stop_stages(stages)
                        actors.cancel_scope.cancel()
                    nursery.cancel_scope.cancel()
        log.info("server stopped")

    async def _watch_parent(self, parent_pid: int) -> None:
        """A worker whose pool process died (even by SIGKILL) stops gracefully instead of living
        on as an orphan that keeps partitions of the consumer group."""
        while os.getppid() == parent_pid:
            await trio.sleep(PARENT_POLL_SECONDS)
        log.warning("parent process is gone; stopping", parent_pid=parent_pid)
        self.request_stop()

    async def _stop_stages(self, stages: Sequence[Sequence[Actor]]) -> None:
        """Stop stage by stage (ingestion, then the writer that takes what ingestion produced)."""
        s = self._settings
        timeout = s.drain_timeout_seconds if s.drain_on_stop else s.shutdown_timeout_seconds
        for stage in stages:
            for actor in stage:
                actor.request_stop()
            with trio.move_on_after(timeout) as scope:
                for actor in stage:
                    await actor.stopped.wait()
            if scope.cancelled_caught:
                log.error(
                    "stop deadline hit; unfinished messages stay uncommitted",
                    stage=[type(actor).__name__ for actor in stage],
                    timeout_s=timeout,
                )


def _stages(components: Sequence[Component], resources: Resources) -> list[list[Actor]]:
    """The components' actors, grouped by stop stage, in stop order."""
    by_stage: dict[int, list[Actor]] = {}
    for component in components:
        by_stage.setdefault(component.stage, []).extend(component.build(resources))
    return [by_stage[stage] for stage in sorted(by_stage)]
