"""LogShipper on trio's mock clock with a fake sink: a failed flush is retried on LOG_SHIP_RETRY's
schedule (0.5, 1, 2, 4, 8 s), at most 6 flushes, then the entries are dropped and counted; the
shipper drains every FLUSH_SECONDS. Exact instants, no real time."""

from __future__ import annotations

import pytest
import trio
from prometheus_client import REGISTRY

from plugin_server.core.errors import ServiceUnavailable, StorageError
from plugin_server.plugins.logs import FLUSH_SECONDS, LogShipper, LogTarget, PluginLogs

TARGET = LogTarget(team_id=2, plugin_id=3, plugin_config_id=7, instance_id="i")
DOWN = ServiceUnavailable("clickhouse", "connection refused")


class FakeSink:
    """Fails its first flushes with `failures` (in order); records the mock-clock instant of each
    flush and the rows each successful flush wrote."""

    name = "fake"

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.pending: list = []
        self.flushes: list[float] = []
        self.written: list[list] = []
        self.resets = 0

    def add(self, row, *, topic: str, partition: int, offset: int) -> None:
        self.pending.append(row)

    async def flush(self):
        self.flushes.append(trio.current_time())
        await trio.lowlevel.checkpoint()
        if self.failures:
            raise self.failures.pop(0)
        self.written.append(self.pending)
        self.pending = []
        return []

    def reset(self) -> None:
        self.resets += 1
        self.pending = []


def dropped() -> float:
    return REGISTRY.get_sample_value("plugin_log_entries_dropped_total") or 0.0


def buffer_with(entries: int) -> PluginLogs:
    logs = PluginLogs()
    for n in range(entries):
        logs.write(TARGET, "PLUGIN", "INFO", f"entry {n}")
    return logs


@pytest.mark.parametrize(
    ("failures", "flushes"),
    [
        (0, [0.0]),
        (1, [0.0, 0.5]),
        (2, [0.0, 0.5, 1.5]),
        (5, [0.0, 0.5, 1.5, 3.5, 7.5, 15.5]),  # the sixth and last flush succeeds
    ],
)
async def test_a_failed_flush_is_retried_on_the_log_ship_schedule(autojump_clock, failures, flushes):
    sink = FakeSink(*[DOWN] * failures)
    before = dropped()
    await LogShipper(buffer=buffer_with(3), sink=sink).ship()
    assert sink.flushes == flushes and trio.current_time() == flushes[-1]
    assert [len(rows) for rows in sink.written] == [3] and sink.resets == 0
    assert dropped() == before


async def test_six_failed_flushes_drop_the_entries_and_count_them(autojump_clock):
    sink = FakeSink(*[DOWN] * 6)
    before = dropped()
    await LogShipper(buffer=buffer_with(4), sink=sink).ship()
    assert sink.flushes == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5]
    assert trio.current_time() == 15.5  # no wait after the last one
    assert sink.written == [] and sink.resets == 1
    assert dropped() == before + 4


async def test_a_refused_flush_is_not_retried(autojump_clock):
    sink = FakeSink(StorageError("clickhouse", "too large"))
    before = dropped()
    await LogShipper(buffer=buffer_with(2), sink=sink).ship()
    assert sink.flushes == [0.0] and sink.resets == 1 and dropped() == before + 2


async def test_run_ships_every_flush_interval_and_once_more_on_stop(autojump_clock):
    logs, sink = PluginLogs(), FakeSink()
    shipper = LogShipper(buffer=logs, sink=sink)
    async with trio.open_nursery() as nursery:
        await nursery.start(shipper.run)
        logs.write(TARGET, "PLUGIN", "INFO", "first")
        await trio.sleep(FLUSH_SECONDS * 2.5)  # ticks at 1 and 2 s: one entry, then nothing
        logs.write(TARGET, "PLUGIN", "INFO", "last")
        nursery.cancel_scope.cancel()
    assert sink.flushes == [FLUSH_SECONDS, FLUSH_SECONDS * 2.5]  # an empty buffer is not flushed
    assert [len(rows) for rows in sink.written] == [1, 1]
