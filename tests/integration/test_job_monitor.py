"""JobQueueMonitor against real Postgres: what it counts, that it refreshes, that a failure does not stop it."""

from __future__ import annotations

import datetime as dt

import pytest
import trio
from prometheus_client import REGISTRY

from jobs.monitor import JOBS_QUEUE_DEPTH, JobQueueMonitor, read_queue_stats
from plugin_server.core.errors import PluginServerError
from plugin_server.storage.postgres import open_postgres

TASK = "test_job_monitor"
INSERT = "INSERT INTO plugin_server_jobs (task_identifier, run_at, locked_at) VALUES ($1, $2, $3) RETURNING id"


@pytest.fixture
async def pg(aio, services):  # aio: the loop the adapter needs
    async with open_postgres(services.database_url, max_size=2) as pg:
        yield pg
        await pg.execute("DELETE FROM plugin_server_jobs WHERE task_identifier = $1", TASK)


def gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value(name)


async def add_job(pg, *, run_in_seconds: float, locked: bool = False) -> int:
    now = dt.datetime.now(dt.UTC)
    return await pg.fetchval(INSERT, TASK, now + dt.timedelta(seconds=run_in_seconds), now if locked else None)


async def test_depth_counts_unlocked_jobs_and_age_only_due_ones(pg):
    with trio.fail_after(30):
        before = await read_queue_stats(pg)
        await add_job(pg, run_in_seconds=-120)  # due two minutes ago
        await add_job(pg, run_in_seconds=3600)  # scheduled: in the depth, not in the age
        await add_job(pg, run_in_seconds=-86_400, locked=True)  # a worker has it: in neither
        after = await read_queue_stats(pg)
    assert after.depth - before.depth == 2
    assert 119 <= after.oldest_age_seconds < 3600


async def test_run_sets_the_gauges_before_it_reports_started_and_then_every_tick(pg):
    await add_job(pg, run_in_seconds=-30)
    monitor = JobQueueMonitor(pg=pg, interval=0.05)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(monitor.run)
            stats = await read_queue_stats(pg)
            assert gauge("jobs_queue_depth") == stats.depth
            assert gauge("jobs_queue_oldest_age_seconds") >= 29
            await add_job(pg, run_in_seconds=-10)
            while gauge("jobs_queue_depth") < stats.depth + 1:
                await trio.sleep(0.02)
            nursery.cancel_scope.cancel()


async def test_a_postgres_failure_is_a_failed_refresh_not_an_error(aio, services):
    """The real adapter's failure is one the monitor catches; that the loop then retries at each
    tick, exactly on time, is tests/unit/test_job_monitor.py's (mock clock, fake Postgres)."""
    async with open_postgres(services.database_url, max_size=1) as closed:
        pass  # a closed pool: every call fails as Postgres being unreachable does
    monitor = JobQueueMonitor(pg=closed)
    JOBS_QUEUE_DEPTH.set(42)
    with trio.fail_after(30):
        with pytest.raises(PluginServerError):
            await read_queue_stats(closed)  # what refresh() catches: ours, not asyncpg's
        assert await monitor.refresh() is None
    assert gauge("jobs_queue_depth") == 42  # the last known value stays
