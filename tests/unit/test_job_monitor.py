"""JobQueueMonitor's poll loop on trio's mock clock, with a fake Postgres: it reads at start and
then every `interval` seconds exactly, and a failed read is retried at the next tick, never
raised. The query against real Postgres: tests/integration/test_job_monitor.py."""

from __future__ import annotations

import pytest
import structlog
import trio
from prometheus_client import REGISTRY

from jobs.monitor import INTERVAL_SECONDS, JOBS_QUEUE_DEPTH, JOBS_QUEUE_OLDEST_AGE, JobQueueMonitor
from plugin_server.core.errors import ServiceUnavailable, StorageError


class FakePostgres:
    """Answers QUEUE_STATS with the next of `answers` (an exception is raised), the last one
    forever; records the mock-clock instant of every read."""

    def __init__(self, *answers: dict | Exception) -> None:
        self.answers = list(answers)
        self.reads: list[float] = []

    async def fetchrow(self, query: str, *args):
        self.reads.append(trio.current_time())
        await trio.lowlevel.checkpoint()
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


DOWN = ServiceUnavailable("postgres", "connection refused")


def depth() -> float | None:
    return REGISTRY.get_sample_value("jobs_queue_depth")


async def test_reads_at_start_then_every_interval(autojump_clock):
    pg = FakePostgres({"depth": 3, "oldest_age": 12.5})
    monitor = JobQueueMonitor(pg=pg)
    async with trio.open_nursery() as nursery:
        await nursery.start(monitor.run)
        assert pg.reads == [0.0] and depth() == 3  # true before the monitor says it started
        await trio.sleep(3 * INTERVAL_SECONDS + 1)
        nursery.cancel_scope.cancel()
    assert pg.reads == [0.0, 15.0, 30.0, 45.0]
    assert INTERVAL_SECONDS == 15.0
    assert REGISTRY.get_sample_value("jobs_queue_oldest_age_seconds") == 12.5


@pytest.mark.parametrize("failure", [DOWN, StorageError("postgres", "permission denied")], ids=["outage", "refused"])
async def test_a_failed_read_is_logged_and_retried_at_the_next_tick_not_raised(autojump_clock, failure):
    pg = FakePostgres(failure, failure, failure, {"depth": 7, "oldest_age": 0.0})
    JOBS_QUEUE_DEPTH.set(42)
    JOBS_QUEUE_OLDEST_AGE.set(1.0)
    monitor = JobQueueMonitor(pg=pg, interval=2.0)
    with structlog.testing.capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            await nursery.start(monitor.run)  # starts anyway: a monitor never holds the server up
            await trio.sleep(4.5)
            assert pg.reads == [0.0, 2.0, 4.0]  # three failed reads, the loop still running
            assert depth() == 42  # the last known value stays meanwhile
            await trio.sleep(2.0)
            nursery.cancel_scope.cancel()
    assert pg.reads == [0.0, 2.0, 4.0, 6.0]
    assert depth() == 7  # the fourth read succeeded
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [e["error"] for e in warnings] == [str(failure)] * 3


async def test_errors_that_are_not_ours_are_raised(autojump_clock):
    monitor = JobQueueMonitor(pg=FakePostgres(RuntimeError("a bug")), interval=2.0)
    with pytest.raises(RuntimeError, match="a bug"):
        await monitor.run()
    assert trio.current_time() == 0.0
