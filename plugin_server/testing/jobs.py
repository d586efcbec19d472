"""An in-memory stand-in for `plugin_server.storage.jobs.JobQueue`.

It keeps the rows the real queue inserts into plugin_server_jobs (`jobs`, in id order) as the
worker that runs them will read them: the payload as jsonb gives it back, `run_at` in UTC (now
when not given; a naive time taken as UTC), and a payload Postgres cannot store refused
(`StorageError`). Every call is one checkpoint, as one round trip is.
tests/contract/test_job_queue_contract.py runs the same cases against both.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from plugin_server.storage.jobs import PLUGIN_JOB
from plugin_server.testing import postgres_values as pgv

if TYPE_CHECKING:
    from plugin_server.storage.jobs import JobQueue, JobQueueLike


@dataclass(frozen=True)
class Job:
    """One row of plugin_server_jobs, as the jobs worker reads it."""

    id: int
    task_identifier: str
    payload: Any
    run_at: dt.datetime


class InMemoryJobQueue:
    def __init__(self) -> None:
        self.jobs: list[Job] = []
        self._ids = itertools.count(1)

    async def enqueue(self, task: str, payload: dict[str, Any], *, run_at: dt.datetime | None = None) -> int:
        await trio.lowlevel.checkpoint()  # other tasks run meanwhile, as during a query
        job = Job(
            next(self._ids),
            pgv.text(task),
            pgv.jsonb(payload),
            dt.datetime.now(dt.UTC) if run_at is None else pgv.timestamptz(run_at),
        )
        self.jobs.append(job)
        return job.id

    async def enqueue_plugin_job(
        self, *, team_id: int, plugin_config_id: int, name: str, payload: Any, run_at: dt.datetime | None
    ) -> int:
        message = {"type": name, "payload": payload, "plugin_config_id": plugin_config_id, "team_id": team_id}
        return await self.enqueue(PLUGIN_JOB, message, run_at=run_at)


if TYPE_CHECKING:  # mypy checks that the fake and the real queue both satisfy the Protocol

    def _conforms(fake: InMemoryJobQueue, real: JobQueue) -> list[JobQueueLike]:
        return [fake, real]
