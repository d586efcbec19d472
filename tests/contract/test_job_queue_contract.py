"""One behaviour suite for the job queue: the Postgres adapter and the in-memory fake.

The queue has no reader yet (the jobs capability will claim rows itself), so each side is read
the way that worker will read it: the real one from plugin_server_jobs, the fake from its list.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
import trio

from plugin_server.core.errors import StorageError
from plugin_server.storage.jobs import PLUGIN_JOB, JobQueue, JobQueueLike
from plugin_server.storage.postgres import open_postgres
from plugin_server.testing.jobs import InMemoryJobQueue, Job

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


@dataclass
class Subject:
    queue: JobQueue | InMemoryJobQueue  # the Protocol's enqueue_plugin_job, plus enqueue
    read: Callable[[int], Awaitable[Job | None]]


@asynccontextmanager
async def real_queue(services) -> AsyncIterator[Subject]:
    async with open_postgres(services.database_url, max_size=2) as pg:
        last_before = await pg.fetchval("SELECT coalesce(max(id), 0) FROM plugin_server_jobs")

        async def read(job_id: int) -> Job | None:
            row = await pg.fetchrow(
                "SELECT id, task_identifier, payload, run_at FROM plugin_server_jobs WHERE id = $1", job_id
            )
            return None if row is None else Job(row["id"], row["task_identifier"], row["payload"], row["run_at"])

        try:
            yield Subject(JobQueue(pg=pg), read)
        finally:  # the job monitors of other suites count waiting rows: leave none behind
            await pg.execute("DELETE FROM plugin_server_jobs WHERE id > $1", last_before)


@asynccontextmanager
async def fake_queue(services) -> AsyncIterator[Subject]:
    queue = InMemoryJobQueue()

    async def read(job_id: int) -> Job | None:
        return next((j for j in queue.jobs if j.id == job_id), None)

    yield Subject(queue, read)


@pytest.fixture(params=[real_queue, fake_queue], ids=["postgres", "in-memory"])
async def subject(request, aio, services):
    async with request.param(services) as opened:
        with trio.fail_after(30):
            yield opened


async def test_a_plugin_job_is_posthogs_message_under_plugin_job(subject):
    s = subject
    protocol: JobQueueLike = s.queue
    job_id = await protocol.enqueue_plugin_job(
        team_id=7, plugin_config_id=42, name="retry", payload={"events": [{"n": 1}]}, run_at=T0
    )
    assert await s.read(job_id) == Job(
        job_id,
        PLUGIN_JOB,
        {"type": "retry", "payload": {"events": [{"n": 1}]}, "plugin_config_id": 42, "team_id": 7},
        T0,
    )


async def test_jobs_get_increasing_ids_and_run_now_unless_told(subject):
    s = subject
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)  # the database's clock may lag ours a little
    first = await s.queue.enqueue("contract-a", {})
    second = await s.queue.enqueue("contract-b", {"n": None})
    assert second > first
    job = await s.read(first)
    assert job.task_identifier == "contract-a" and job.payload == {}
    assert before <= job.run_at <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    assert (await s.read(second)).payload == {"n": None}


async def test_run_at_is_kept_in_utc_and_a_naive_time_is_utc(subject):
    s = subject
    east = dt.timezone(dt.timedelta(hours=9))
    aware = await s.queue.enqueue("contract-tz", {}, run_at=T0.astimezone(east))
    naive = await s.queue.enqueue("contract-tz", {}, run_at=dt.datetime(2024, 5, 1, 12))
    for job_id in (aware, naive):
        run_at = (await s.read(job_id)).run_at
        assert run_at == T0 and run_at.utcoffset() == dt.timedelta(0)


async def test_payloads_come_back_as_jsonb_stores_them(subject):
    s = subject
    job_id = await s.queue.enqueue_plugin_job(
        team_id=1, plugin_config_id=1, name="n", payload={"zz": (1,), "a": "x\x00", "nan": float("nan")},
        run_at=None,
    )  # fmt: skip
    payload = (await s.read(job_id)).payload["payload"]
    assert payload == {"a": "x\ufffd", "zz": [1], "nan": None}
    assert list(payload) == ["a", "zz", "nan"]


async def test_an_unstorable_payload_is_refused(subject):
    s = subject
    for bad in ({"o": object()}, {"when": T0, "big": 2**70}):
        with pytest.raises(StorageError):
            await s.queue.enqueue_plugin_job(team_id=1, plugin_config_id=1, name="n", payload=bad, run_at=None)
    with pytest.raises(StorageError):
        await s.queue.enqueue("contract-\x00", {})
