"""How far behind the job queue is: `jobs_queue_depth` and `jobs_queue_oldest_age_seconds`.

`JobQueueMonitor` reads `plugin_server_jobs` every `interval` seconds (rows nobody has locked:
how many, and how long the oldest due one has waited) and sets the two gauges. Every process that
runs the plugin runtime runs one, so several processes report the same figures: aggregate them
with `max`, never `sum`. The age is measured by Postgres' clock, so host clocks do not matter.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio
from prometheus_client import Gauge

from plugin_server.core import logs
from plugin_server.core.errors import PluginServerError
from plugin_server.storage.postgres import Postgres

log = logs.get(__name__)

# Often enough for an alert to fire within a minute, rare enough to cost nothing (one indexed
# query per process every 15 s).
INTERVAL_SECONDS = 15.0

JOBS_QUEUE_DEPTH = Gauge("jobs_queue_depth", "Jobs waiting in plugin_server_jobs (not locked), due or not.")
JOBS_QUEUE_OLDEST_AGE = Gauge(
    "jobs_queue_oldest_age_seconds", "How long the oldest due, unlocked job has waited past its run_at (0: none)."
)

# Due: run_at has passed. Jobs scheduled for later count in the depth, not in the age.
QUEUE_STATS = """
SELECT count(*) AS depth,
       COALESCE(EXTRACT(EPOCH FROM now() - min(run_at) FILTER (WHERE run_at <= now())), 0)::float8 AS oldest_age
FROM plugin_server_jobs
WHERE locked_at IS NULL"""


@dataclass(frozen=True)
class QueueStats:
    depth: int
    oldest_age_seconds: float


async def read_queue_stats(pg: Postgres) -> QueueStats:
    """The queue's depth and the age of its oldest due job (one query)."""
    row = await pg.fetchrow(QUEUE_STATS)
    assert row is not None, "an aggregate query answers one row"
    return QueueStats(depth=int(row["depth"]), oldest_age_seconds=max(0.0, float(row["oldest_age"])))


class JobQueueMonitor:
    """Refreshes the job queue gauges from Postgres, once at start and then every `interval` s.

    Holds no resources of its own (it borrows the server's pool). A failed read (Postgres down, a
    query refused) is logged and retried at the next tick; the gauges keep their last values
    meanwhile, and the server carries on: a monitor never stops ingestion.
    """

    def __init__(self, *, pg: Postgres, interval: float = INTERVAL_SECONDS) -> None:
        self._pg = pg
        self._interval = interval

    async def refresh(self) -> QueueStats | None:
        try:
            stats = await read_queue_stats(self._pg)
        except PluginServerError as exc:
            log.warning("could not read the job queue; retrying at the next tick", error=str(exc))
            return None
        JOBS_QUEUE_DEPTH.set(stats.depth)
        JOBS_QUEUE_OLDEST_AGE.set(stats.oldest_age_seconds)
        return stats

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.refresh()  # the gauges are true once the server says it is ready
        task_status.started()
        while True:
            await trio.sleep(self._interval)
            await self.refresh()
