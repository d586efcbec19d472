"""Enqueueing jobs in Postgres (`plugin_server_jobs`, migrations/postgres/0001_initial.sql).

Only the producing side lives here today: plugins enqueue through `meta.jobs`
(plugin_server/plugins/meta/jobs.py). The worker that claims and runs jobs (SELECT ... FOR UPDATE
SKIP LOCKED) is the jobs capability's.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

from plugin_server.storage.postgres import Postgres

PLUGIN_JOB = "plugin_job"  # task_identifier of a job a plugin enqueued (REFERENCE.md 6.11)

INSERT_JOB = """
INSERT INTO plugin_server_jobs (task_identifier, payload, run_at) VALUES ($1, $2, COALESCE($3, now()))
RETURNING id"""


class JobQueueLike(Protocol):
    """What plugins' `meta.jobs` and the plugin runtime (export retries) ask of the job queue.

    `JobQueue` below writes to Postgres; `plugin_server.testing.jobs.InMemoryJobQueue` is its
    fake, and tests/contract/test_job_queue_contract.py holds both to the same behaviour.
    """

    async def enqueue_plugin_job(
        self, *, team_id: int, plugin_config_id: int, name: str, payload: Any, run_at: dt.datetime | None
    ) -> int: ...


class JobQueue:
    def __init__(self, *, pg: Postgres) -> None:
        self._pg = pg

    async def enqueue(self, task: str, payload: dict[str, Any], *, run_at: dt.datetime | None = None) -> int:
        job_id: int = await self._pg.fetchval(INSERT_JOB, task, payload, run_at)
        return job_id

    async def enqueue_plugin_job(
        self, *, team_id: int, plugin_config_id: int, name: str, payload: Any, run_at: dt.datetime | None
    ) -> int:
        """PostHog's job message: {type, payload, pluginConfigId, pluginConfigTeam} (snake_case)."""
        message = {"type": name, "payload": payload, "plugin_config_id": plugin_config_id, "team_id": team_id}
        return await self.enqueue(PLUGIN_JOB, message, run_at=run_at)
