"""The plugin runtime's timers on trio's mock clock: setup_plugin retries on PLUGIN_SETUP_RETRY's
schedule (3, 6, 12, ... s, 10 setups, then the config is disabled) and the watchdog's verdict on a
stuck call, each asserted to the exact instant and taking no real time.

Plugin calls normally run in worker threads; while a thread runs, autojump_clock would jump to the
next timer (the watchdog's tick) and move the instants by a random amount. `InlineRuntime` runs
them in the trio thread instead, so the clock moves only when the runtime sleeps. The watchdog
test keeps its real thread: there the jump to the first tick is the point. The runtime against
real Postgres and threads: tests/integration/test_plugins.py.
"""

from __future__ import annotations

import functools
import threading
import time
from types import SimpleNamespace

import pytest
import trio

from plugin_server.core.retry import PLUGIN_SETUP_RETRY
from plugin_server.plugins import runtime as runtime_module
from plugin_server.plugins.chain import Progress
from plugin_server.plugins.logs import PluginLogs
from plugin_server.plugins.runtime import PluginRuntime, StuckCall
from plugin_server.testing.plugins import InMemoryPluginStore

TEAM = 2
RETRY_TICK = 1.0  # PluginRuntime._retry_setups looks for due setups once a second


class InlineRuntime(PluginRuntime):
    """Plugin calls in the trio thread (see the module docstring); each setup's instant recorded."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.setups: list[float] = []

    async def _in_thread(self, fn):
        return fn()

    async def _watched(self, fn, progress):
        return fn()

    async def _setup(self, loaded):
        self.setups.append(trio.current_time())
        await super()._setup(loaded)


def failing_setup(failures: int) -> str:
    """A plugin whose first `failures` setups raise (counted in `meta.global_`, not through
    meta's storage: its I/O would need a worker thread)."""
    return (
        "def setup_plugin(meta):\n"
        "    meta.global_['tries'] = meta.global_.get('tries', 0) + 1\n"
        f"    if meta.global_['tries'] <= {failures}:\n"
        "        raise RuntimeError('not yet: ' + str(meta.global_['tries']))\n"
        "def process_event(event, meta):\n"
        "    event['properties']['set_up'] = True\n"
        "    return event\n"
    )


async def install(store: InMemoryPluginStore, source: str) -> int:
    _, config_id = await store.install(
        team_id=TEAM, name="flaky", description="", url="", config_schema=[], capabilities={},
        sources={"main.py": source}, config={}, order=0,
    )  # fmt: skip
    return config_id


def setup_instants(attempts: int) -> list[float]:
    """When each setup starts: the load at 0, then each retry on the first tick at or after its
    delay (the delays are whole seconds, so exactly at it)."""
    instants, now = [0.0], 0.0
    for attempt in range(1, attempts):
        delay = PLUGIN_SETUP_RETRY.decide(RuntimeError("x"), attempt)
        assert delay is not None and delay % RETRY_TICK == 0
        now += delay
        instants.append(now)
    return instants


async def test_failed_setups_are_retried_after_3_then_6_seconds(autojump_clock):
    store, logs = InMemoryPluginStore(), PluginLogs()
    config_id = await install(store, failing_setup(2))
    runtime = InlineRuntime(store=store, redis=None, logs=logs, task_timeout=2.0, threads=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        assert runtime.setups == [0.0] and await store.error_of(config_id) is not None
        await trio.sleep(60)
        ready = [c.ready for c in runtime._generation.chains[TEAM]]
        nursery.cancel_scope.cancel()
    assert runtime.setups == [0.0, 3.0, 9.0] == setup_instants(3)
    assert ready == [True]
    assert await store.error_of(config_id) is None  # cleared by the successful setup
    messages = [r.line.decode() for r in logs.drain()]
    assert sum("retrying in 3 s" in m for m in messages) == 1 and sum("retrying in 6 s" in m for m in messages) == 1


async def test_the_tenth_failed_setup_disables_the_config(autojump_clock):
    store, logs = InMemoryPluginStore(), PluginLogs()
    config_id = await install(store, failing_setup(1000))
    runtime = InlineRuntime(store=store, redis=None, logs=logs, task_timeout=2.0, threads=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        await trio.sleep(1533 - 1)  # the tenth setup is due at 3 + 6 + ... + 768 = 1533 s
        assert len(runtime.setups) == 9 and store.configs[config_id].enabled
        await trio.sleep(2 * 1533)  # and no eleventh: the config is disabled
        nursery.cancel_scope.cancel()
    assert runtime.setups == setup_instants(10)
    assert runtime.setups == [0.0, 3.0, 9.0, 21.0, 45.0, 93.0, 189.0, 381.0, 765.0, 1533.0]
    assert not store.configs[config_id].enabled
    error = await store.error_of(config_id)
    assert error["name"] == "Disabled" and "setup_plugin failed 10 times" in error["message"]


def blocked(release: threading.Event) -> str:
    release.wait(30)  # a call stuck in C code; released by the test once the watchdog gave up on it
    return "returned"


async def test_the_watchdog_abandons_a_call_stuck_past_its_timeout_on_its_first_tick(autojump_clock):
    runtime = PluginRuntime(store=InMemoryPluginStore(), redis=None, logs=PluginLogs(), task_timeout=1.0, threads=2)
    config = SimpleNamespace(timeout=1.0, label="stuck (7)")
    # started long enough ago (by the monotonic clock the watchdog reads) to be past timeout + grace
    progress = Progress(config, time.monotonic() - (config.timeout + runtime_module.STUCK_GRACE_SECONDS + 1))
    release = threading.Event()
    try:
        with pytest.raises(StuckCall) as stuck:
            await runtime._watched(functools.partial(blocked, release), progress)
    finally:
        release.set()
    assert trio.current_time() == runtime_module.WATCHDOG_INTERVAL  # the first tick, not a later one
    assert stuck.value.config is config


async def test_the_watchdog_leaves_a_call_within_its_time_alone(autojump_clock):
    runtime = PluginRuntime(store=InMemoryPluginStore(), redis=None, logs=PluginLogs(), task_timeout=1.0, threads=2)
    progress = Progress(SimpleNamespace(timeout=1.0, label="busy (7)"), time.monotonic())
    release = threading.Event()

    async def release_later() -> None:
        await trio.sleep(60)  # a minute of ticks on the mock clock; the call's own clock barely moved
        release.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(release_later)
        assert await runtime._watched(functools.partial(blocked, release), progress) == "returned"
    assert trio.current_time() >= 60
