"""`meta.jobs`: one attribute per job the plugin exports; `meta.jobs.<name>(payload)` says when to
run it, and the job is enqueued in Postgres (`plugin_server_jobs`, storage/jobs.py) for the job
queue (jobs/) to run."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from plugin_server.plugins.meta._bridge import Bridge, MetaError, serialize
from plugin_server.storage.jobs import JobQueueLike

MAX_JOB_DELAY = dt.timedelta(days=365)


class JobHandle:
    """`meta.jobs.<name>(payload)`: when to run it."""

    __slots__ = ("_jobs", "_name", "_payload")

    def __init__(self, jobs: Jobs, name: str, payload: Any) -> None:
        self._jobs = jobs
        self._name = name
        self._payload = payload

    def run_now(self) -> None:
        self._jobs._enqueue(self._name, self._payload, None)

    def run_in(self, seconds: float = 0, minutes: float = 0, hours: float = 0, days: float = 0) -> None:
        delay = dt.timedelta(seconds=seconds, minutes=minutes, hours=hours, days=days)
        if delay < dt.timedelta(0) or delay > MAX_JOB_DELAY:
            raise MetaError("a job runs between now and a year from now")
        self._jobs._enqueue(self._name, self._payload, dt.datetime.now(dt.UTC) + delay)

    def run_at(self, when: dt.datetime) -> None:
        if not isinstance(when, dt.datetime):
            raise MetaError("run_at takes a datetime")
        when = when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
        if when - dt.datetime.now(dt.UTC) > MAX_JOB_DELAY:
            raise MetaError("a job runs between now and a year from now")
        self._jobs._enqueue(self._name, self._payload, when)


class Jobs:
    __slots__ = ("_bridge", "_config_id", "_names", "_queue", "_team_id")

    def __init__(self, *, names: frozenset[str], queue: JobQueueLike | None, team_id: int, config_id: int) -> None:
        self._names = names
        self._queue = queue
        self._team_id = team_id
        self._config_id = config_id
        self._bridge = Bridge("jobs")

    def __getattr__(self, name: str) -> Callable[..., JobHandle]:
        if name.startswith("_") or name not in self._names:
            raise AttributeError(f"no job named {name!r}")

        def job(payload: Any = None) -> JobHandle:
            return JobHandle(self, name, _plain(payload))

        return job

    def _enqueue(self, name: str, payload: Any, when: dt.datetime | None) -> None:
        if self._queue is None:
            raise MetaError("jobs are not available in this server")
        self._bridge.run(
            self._queue.enqueue_plugin_job,
            team_id=self._team_id, plugin_config_id=self._config_id, name=name, payload=payload, run_at=when,
        )  # fmt: skip


def _plain(payload: Any) -> Any:
    """The payload as the job will see it: through JSON, checked and bounded like a stored value."""
    return json.loads(serialize(payload))
