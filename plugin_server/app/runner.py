"""Run a Server in the foreground until SIGTERM/SIGINT: the root of one process.

One process = one `trio.run`; the root opens the trio-asyncio loop once (asyncpg, redis and
aiokafka are asyncio libraries) and everything below it is plain trio. The first signal asks
for a graceful stop (finish, flush, commit); a second one cancels at once.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable

import trio

from plugin_server.app.server import Server, ServerHandle
from plugin_server.core import aio, gc_policy, logs

log = logs.get(__name__)


async def serve(
    server: Server,
    *,
    on_ready: Callable[[ServerHandle], Awaitable[None]] | None = None,
    on_stopping: Callable[[], None] | None = None,
) -> None:
    """Run `server` under the current trio-asyncio loop until it stops by a signal or on its own.
    As the root of a process it also sets the process's garbage-collector policy (gc_policy)."""
    gen0 = server.settings.gc_gen0_threshold
    gc_policy.configure(gen0)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def watch_signals() -> None:
                received = 0
                async for signum in signals:
                    received += 1
                    if received == 1:
                        log.info("stopping gracefully", signal=signal.Signals(signum).name)
                        if on_stopping is not None:
                            on_stopping()
                        server.request_stop()
                    else:
                        log.warning("second signal: stopping now", signal=signal.Signals(signum).name)
                        nursery.cancel_scope.cancel()

            nursery.start_soon(watch_signals)

            class ReadyHook:
                """The server's task_status: readiness starts `on_ready`. A server stopped during
                start-up never reports ready, and that is a clean stop, not an error."""

                def started(self, value: ServerHandle | None = None) -> None:
                    if gen0 > 0:
                        gc_policy.freeze()
                    if on_ready is not None and value is not None:
                        nursery.start_soon(on_ready, value)

            async def run_server() -> None:
                await server.run(task_status=ReadyHook())
                nursery.cancel_scope.cancel()

            nursery.start_soon(run_server)


def run_foreground(
    server: Server,
    *,
    on_ready: Callable[[ServerHandle], Awaitable[None]] | None = None,
    on_stopping: Callable[[], None] | None = None,
) -> None:
    async def main() -> None:
        async with aio.open_loop():
            await serve(server, on_ready=on_ready, on_stopping=on_stopping)

    trio.run(main)
