"""The worker pool: N ingestion worker processes, supervised by the server process.

Each child is `plugin-server --mode ingestion`, a member of the same consumer group, so Kafka
spreads the partitions over them. Resources: each child is a process started here and always
reaped here: on stop it gets SIGTERM (it finishes its batch, commits, and exits) and is killed if
it has not exited by the deadline. Errors: a child that exits on its own is restarted with
backoff; what it had not committed is re-read by whichever member owns its partitions next.
Health: the pool polls each child's `/_health` and mirrors it into a ConsumerStatus, so the
server's own `/_health` and `/_ready` cover the children.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping

import httpx
import trio

from plugin_server.core import logs
from plugin_server.core.errors import PluginServerError
from plugin_server.core.health import ConsumerStatus
from plugin_server.core.net import free_port
from plugin_server.core.retry import WORKER_RESTART

log = logs.get(__name__)
READY_TIMEOUT_SECONDS = 120.0
POLL_SECONDS = 1.0
# A child that ran this long before dying is considered to have been healthy: backoff restarts.
STABLE_SECONDS = 60.0


class WorkerCrashed(PluginServerError):
    """A child exited on its own. The pool restarts it, so this is never raised out of the pool."""

    retryable = True


class ChildFailedToStart(PluginServerError):
    def __init__(self, index: int, code: int | None) -> None:
        super().__init__(f"ingestion worker {index} exited with code {code} before it was ready")


class WorkerPool:
    def __init__(self, *, count: int, environ: Mapping[str, str], stop_timeout: float) -> None:
        """`environ`: the children's whole environment (the parent's settings, made explicit)."""
        self._count = count
        self._environ = dict(environ)
        self._stop_timeout = stop_timeout
        self._stopping = False
        self._procs: dict[int, trio.Process] = {}
        self.statuses = [ConsumerStatus(f"ingestion-{i}") for i in range(count)]
        self.stopped = trio.Event()  # set once `run` returned: every child reaped

    def request_stop(self) -> None:
        """SIGTERM every child: each stops as its own settings say (finish, or drain), then exits."""
        self._stopping = True
        for proc in self._procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)

    async def run(self, *, task_status: trio.TaskStatus[WorkerPool] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                async with trio.open_nursery() as starting:  # start the children in parallel
                    for index in range(self._count):
                        starting.start_soon(nursery.start, self._supervise, index)
                task_status.started(self)
        finally:
            self.stopped.set()

    async def _supervise(self, index: int, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        failures = 0
        started = False
        while not self._stopping:
            port = free_port()
            env = {
                **self._environ, "PLUGIN_SERVER_MODE": "ingestion", "WORKER_CONCURRENCY": "1", "HTTP_PORT": str(port),
                # PR_SET_PDEATHSIG cannot be used: trio forks from a worker thread, whose exit would
                # fire it. The child watches its parent instead (Server._watch_parent).
                "PLUGIN_SERVER_PARENT_PID": str(os.getpid()),
            }  # fmt: skip
            proc = await trio.lowlevel.open_process(
                [sys.executable, "-m", "plugin_server"], env=env, stdin=subprocess.DEVNULL, start_new_session=True
            )
            self._procs[index] = proc
            began = time.monotonic()
            try:
                async with trio.open_nursery() as watch:
                    watch.start_soon(self._poll_health, index, port, proc)
                    if not started:
                        await self._wait_ready(index, port, proc)
                        started = True
                        task_status.started()
                    await proc.wait()
                    watch.cancel_scope.cancel()
            finally:
                with trio.CancelScope(shield=True):
                    await self._reap(proc)
                self._procs.pop(index, None)
                self.statuses[index].running = False
            if self._stopping:
                return
            failures = 1 if time.monotonic() - began > STABLE_SECONDS else failures + 1
            delay = WORKER_RESTART.decide(WorkerCrashed(f"worker {index} exited with {proc.returncode}"), failures)
            assert delay is not None, "WORKER_RESTART has no attempt limit and WorkerCrashed is retryable"
            log.error("ingestion worker exited; restarting", worker=index, code=proc.returncode, restart_in_s=delay)
            await trio.sleep(delay)

    async def _wait_ready(self, index: int, port: int, proc: trio.Process) -> None:
        with trio.fail_after(READY_TIMEOUT_SECONDS):
            async with httpx.AsyncClient(timeout=2) as client:
                while True:
                    if proc.returncode is not None:
                        raise ChildFailedToStart(index, proc.returncode)
                    try:
                        if (await client.get(f"http://127.0.0.1:{port}/_ready")).status_code == 200:
                            return
                    except httpx.HTTPError:
                        pass
                    await trio.sleep(0.1)

    async def _poll_health(self, index: int, port: int, proc: trio.Process) -> None:
        status = self.statuses[index]
        async with httpx.AsyncClient(timeout=5) as client:
            while proc.returncode is None:
                try:
                    response = await client.get(f"http://127.0.0.1:{port}/_health")
                    check = response.json()["checks"].get("ingestion", {})
                except (httpx.HTTPError, ValueError, KeyError):
                    check = {}
                status.running = bool(check.get("running"))
                status.assigned = bool(check.get("assigned"))
                status.lag = check.get("lag")
                status.consumed = check.get("consumed", status.consumed)
                status.retrying = check.get("retrying")
                if "seconds_since_progress" in check:
                    status.last_progress = time.monotonic() - check["seconds_since_progress"]
                await trio.sleep(POLL_SECONDS)

    async def _reap(self, proc: trio.Process) -> None:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            with trio.move_on_after(self._stop_timeout):
                await proc.wait()
        if proc.returncode is None:
            log.error("ingestion worker did not stop in time; killing it", pid=proc.pid)
            proc.kill()
            await proc.wait()
