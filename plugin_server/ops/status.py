"""`plugin-server status`: consumer lag per partition, the writer's backlog, the job queue, plugin errors.

What an operator asks first when events are late: is a consumer group behind, and where; is the
ClickHouse writer behind; are jobs piling up; which plugin configs are failing. Everything is read,
nothing is changed: no consumer group is joined (committed offsets are fetched, not consumed), so
running `status` never rebalances the running workers.

Gathering is a few small async functions, one per source, bounded together by one deadline
(`gather(timeout=...)`): an unreachable Kafka or Postgres becomes `ServiceUnavailable` naming it,
never a hang. Shaping and rendering (lag arithmetic, the text tables, the JSON object) are pure
functions at the top, tested with tables of values, malformed ones included.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import trio

from plugin_server.app.config import Settings
from plugin_server.app.topics import row_topics
from plugin_server.core.errors import ServiceUnavailable
from plugin_server.storage.kafka.reader import LogRange, committed_offsets, log_ranges
from plugin_server.storage.postgres import Postgres, open_postgres

# Long enough for a cold start of three Kafka clients and a Postgres pool on a busy machine; short
# enough that a status against a dead service answers while the operator is still looking.
STATUS_TIMEOUT_SECONDS = 10.0
# Plugin error messages can be whole tracebacks; the first line's worth identifies the failure.
MESSAGE_WIDTH = 100
# Plugin names and error times are short; a malformed one must not stretch the table.
NAME_WIDTH = 40
# The most recent plugin errors shown; the total count is always reported.
PLUGIN_ERRORS_SHOWN = 50

INGESTION, WRITER, ASYNC = "ingestion", "writer", "async"

JOB_QUEUE = """
SELECT task_identifier,
       count(*) FILTER (WHERE locked_at IS NULL) AS depth,
       count(*) FILTER (WHERE locked_at IS NULL AND run_at <= now()) AS due,
       count(*) FILTER (WHERE locked_at IS NOT NULL) AS locked,
       extract(epoch FROM now() - min(run_at) FILTER (WHERE locked_at IS NULL AND run_at <= now()))::float8
           AS oldest_due_seconds
FROM plugin_server_jobs
GROUP BY task_identifier
ORDER BY task_identifier"""
PLUGIN_CONFIG_COUNTS = """
SELECT count(*) FILTER (WHERE enabled) AS enabled,
       count(*) FILTER (WHERE NOT enabled) AS disabled,
       count(*) FILTER (WHERE error IS NOT NULL) AS with_errors
FROM posthog_pluginconfig"""
PLUGIN_ERRORS = """
SELECT c.id AS config_id, c.team_id, c.enabled, p.name AS plugin, c.error
FROM posthog_pluginconfig c JOIN posthog_plugin p ON p.id = c.plugin_id
WHERE c.error IS NOT NULL
ORDER BY c.error ->> 'time' DESC NULLS LAST, c.id DESC
LIMIT $1"""


@dataclass(frozen=True, slots=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # the next offset the group reads; None: it never committed here
    beginning: int
    end: int
    lag: int


@dataclass(frozen=True, slots=True)
class GroupLag:
    role: str  # INGESTION, WRITER or ASYNC
    group: str
    topics: tuple[str, ...]
    partitions: tuple[PartitionLag, ...]  # empty when none of the topics exists

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)


@dataclass(frozen=True, slots=True)
class JobTask:
    task: str
    depth: int  # waiting (not locked by a worker), due or not
    due: int  # waiting and due now
    locked: int  # claimed by a worker
    oldest_due_seconds: float | None  # how long the oldest due job has waited; None: nothing due


@dataclass(frozen=True, slots=True)
class PluginError:
    config_id: int
    team_id: int
    plugin: str
    enabled: bool
    message: str
    time: str | None


@dataclass(frozen=True, slots=True)
class PluginsStatus:
    enabled: int
    disabled: int
    with_errors: int  # all configs with an error; `errors` holds the most recent of them
    errors: tuple[PluginError, ...]


@dataclass(frozen=True, slots=True)
class Status:
    groups: tuple[GroupLag, ...]
    jobs: tuple[JobTask, ...]
    plugins: PluginsStatus

    @property
    def writer_backlog(self) -> GroupLag | None:
        return next((g for g in self.groups if g.role == WRITER), None)


# --- pure: shaping -------------------------------------------------------------------------------


def consumer_groups(settings: Settings) -> list[tuple[str, str, tuple[str, ...]]]:
    """(role, group, topics) of every consumer group the server uses."""
    return [
        (INGESTION, settings.kafka_consumer_group, (settings.kafka_consumption_topic,)),
        (WRITER, settings.kafka_writer_group, tuple(dict.fromkeys(row_topics(settings).values()))),
        (ASYNC, settings.kafka_async_group, (settings.clickhouse_json_events_kafka_topic,)),
    ]


def lag(*, committed: int | None, beginning: int, end: int) -> int:
    """Messages the group has yet to read: from its committed offset (or, if it never committed or
    committed below what the log still holds, from the beginning, where it would start) to the end.
    Never negative: an end measured before a commit landed reads as caught up."""
    if committed is not None and committed < 0:  # Kafka's "no offset"
        committed = None
    beginning = max(0, beginning)
    start = beginning if committed is None else max(committed, beginning)
    return max(0, end - start)


def partition_lags(
    topics: Sequence[str], ranges: Mapping[tuple[str, int], LogRange], committed: Mapping[tuple[str, int], int | None]
) -> tuple[PartitionLag, ...]:
    """The partitions of `topics` found in `ranges`, in topic then partition order."""
    rows = []
    for topic, partition in sorted(k for k in ranges if k[0] in topics):
        span = ranges[(topic, partition)]
        offset = committed.get((topic, partition))
        offset = None if offset is None or offset < 0 else offset
        rows.append(
            PartitionLag(
                topic, partition, offset, span.beginning, span.end,
                lag(committed=offset, beginning=span.beginning, end=span.end),
            )
        )  # fmt: skip
    return tuple(rows)


def job_task(row: Mapping[str, Any] | asyncpg.Record) -> JobTask:
    oldest = row["oldest_due_seconds"]
    return JobTask(
        task=str(row["task_identifier"]),
        depth=int(row["depth"]),
        due=int(row["due"]),
        locked=int(row["locked"]),
        oldest_due_seconds=None if oldest is None else max(0.0, float(oldest)),
    )


def one_line(text: str, width: int = MESSAGE_WIDTH) -> str:
    """`text` on one line (whitespace runs become one space), cut to `width` characters with '...'."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    return flat[: width - 3] + "..." if width > 3 else flat[: max(0, width)]


def error_fields(error: Any) -> tuple[str, str | None]:
    """(message, time) of a `posthog_pluginconfig.error` value: PostHog's {message, time, name?, ...},
    or whatever else someone stored there, shown as it is rather than hidden."""
    if isinstance(error, Mapping):
        message = error.get("message")
        name = error.get("name")
        if message is None or (isinstance(message, str) and not message.strip()):
            message = json.dumps(error, default=str, sort_keys=True)  # nothing to say: show all there is
        elif not isinstance(message, str):
            message = str(message)
        if isinstance(name, str) and name and not message.startswith(name):
            message = f"{name}: {message}"
        time = error.get("time")
        return one_line(message), None if time is None else one_line(str(time), NAME_WIDTH)
    if isinstance(error, str):
        return one_line(error), None
    return one_line(json.dumps(error, default=str)), None


def plugin_error(row: Mapping[str, Any] | asyncpg.Record) -> PluginError:
    message, time = error_fields(row["error"])
    return PluginError(
        config_id=int(row["config_id"]),
        team_id=int(row["team_id"]),
        plugin=one_line(row["plugin"] or "", NAME_WIDTH) or "?",
        enabled=bool(row["enabled"]),
        message=message,
        time=time,
    )


def as_json(status: Status) -> dict[str, Any]:
    """The machine form (`--json`): the same data as the text, one object."""
    writer = status.writer_backlog
    return {
        "kafka_lag": [
            {
                "role": g.role,
                "group": g.group,
                "topics": list(g.topics),
                "lag": g.lag,
                "partitions": [
                    {
                        "topic": p.topic,
                        "partition": p.partition,
                        "committed": p.committed,
                        "beginning": p.beginning,
                        "end": p.end,
                        "lag": p.lag,
                    }
                    for p in g.partitions
                ],
            }
            for g in status.groups
        ],
        "writer_backlog": None if writer is None else {"group": writer.group, "lag": writer.lag},
        "job_queue": {
            "depth": sum(t.depth for t in status.jobs),
            "due": sum(t.due for t in status.jobs),
            "locked": sum(t.locked for t in status.jobs),
            "oldest_due_seconds": _oldest(status.jobs),
            "tasks": [
                {
                    "task_identifier": t.task,
                    "depth": t.depth,
                    "due": t.due,
                    "locked": t.locked,
                    "oldest_due_seconds": t.oldest_due_seconds,
                }
                for t in status.jobs
            ],
        },
        "plugins": {
            "enabled": status.plugins.enabled,
            "disabled": status.plugins.disabled,
            "with_errors": status.plugins.with_errors,
            "errors": [
                {
                    "config_id": e.config_id,
                    "team_id": e.team_id,
                    "plugin": e.plugin,
                    "enabled": e.enabled,
                    "time": e.time,
                    "message": e.message,
                }
                for e in status.plugins.errors
            ],
        },
    }


def _oldest(jobs: Sequence[JobTask]) -> float | None:
    ages = [t.oldest_due_seconds for t in jobs if t.oldest_due_seconds is not None]
    return max(ages) if ages else None


# --- pure: text ----------------------------------------------------------------------------------


def format_age(seconds: float | None) -> str:
    """A short age: 45s, 3m12s, 2h05m, 3d04h; '-' for none (or a value that is not a number)."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: frozenset[int] = frozenset()) -> list[str]:
    """Aligned lines: a header, then the rows; columns in `right` (numbers) align right. The last
    column is not padded, so no line ends in spaces."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(padded).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def _offset(value: int | None) -> str:
    return "-" if value is None else str(value)


def _kafka_lines(groups: Sequence[GroupLag]) -> list[str]:
    rows = [
        [g.group, p.topic, str(p.partition), _offset(p.committed), str(p.end), str(p.lag)]
        for g in groups
        for p in g.partitions
    ]
    lines = table(["group", "topic", "partition", "committed", "end", "lag"], rows, right=frozenset({2, 3, 4, 5}))
    lines = lines if rows else []
    lines.extend(
        f"{g.group} ({g.role}): no partitions, topics not found: {', '.join(g.topics)}"
        for g in groups
        if not g.partitions
    )
    lines.append("total lag: " + ", ".join(f"{g.group} ({g.role}) {g.lag}" for g in groups))
    return lines


def _writer_lines(writer: GroupLag | None) -> list[str]:
    if writer is None:
        return ["no writer group"]
    noun = "message" if writer.lag == 1 else "messages"
    return [f"{writer.group}: {writer.lag} {noun} behind on {len(writer.topics)} row topics"]


def _job_lines(jobs: Sequence[JobTask]) -> list[str]:
    if not jobs:
        return ["no jobs"]
    rows = [[t.task, str(t.depth), str(t.due), str(t.locked), format_age(t.oldest_due_seconds)] for t in jobs]
    total = [
        "total", str(sum(t.depth for t in jobs)), str(sum(t.due for t in jobs)), str(sum(t.locked for t in jobs)),
        format_age(_oldest(jobs)),
    ]  # fmt: skip
    return table(["task", "depth", "due", "locked", "oldest due"], [*rows, total], right=frozenset({1, 2, 3}))


def _plugin_lines(plugins: PluginsStatus) -> list[str]:
    noun = "error" if plugins.with_errors == 1 else "errors"
    lines = [f"configs: {plugins.enabled} enabled, {plugins.disabled} disabled, {plugins.with_errors} with {noun}"]
    if plugins.errors:
        rows = [
            [str(e.config_id), str(e.team_id), e.plugin, "yes" if e.enabled else "no", e.time or "-", e.message]
            for e in plugins.errors
        ]
        lines.extend(table(["config", "team", "plugin", "enabled", "time", "message"], rows, right=frozenset({0, 1})))
    if plugins.with_errors > len(plugins.errors):
        lines.append(f"(the {len(plugins.errors)} most recent of {plugins.with_errors} shown)")
    return lines


def render(status: Status) -> str:
    """The terminal form: one titled section each, bodies indented by two spaces."""
    sections = [
        ("Kafka lag", _kafka_lines(status.groups)),
        ("Writer backlog", _writer_lines(status.writer_backlog)),
        ("Job queue", _job_lines(status.jobs)),
        ("Plugin errors", _plugin_lines(status.plugins)),
    ]
    return "\n\n".join("\n".join([title, *("  " + line for line in body)]) for title, body in sections)


# --- I/O -----------------------------------------------------------------------------------------


async def kafka_lag(settings: Settings) -> tuple[GroupLag, ...]:
    groups = consumer_groups(settings)
    topics = list(dict.fromkeys(t for _, _, group_topics in groups for t in group_topics))
    ranges = await log_ranges(hosts=settings.kafka_hosts, topics=topics)
    found = []
    for role, group, group_topics in groups:
        partitions = [key for key in ranges if key[0] in group_topics]
        committed = await committed_offsets(hosts=settings.kafka_hosts, group_id=group, partitions=partitions)
        found.append(GroupLag(role, group, group_topics, partition_lags(group_topics, ranges, committed)))
    return tuple(found)


async def job_queue(pg: Postgres) -> tuple[JobTask, ...]:
    return tuple(job_task(row) for row in await pg.fetch(JOB_QUEUE))


async def plugins_status(pg: Postgres) -> PluginsStatus:
    counts = await pg.fetchrow(PLUGIN_CONFIG_COUNTS)
    assert counts is not None, "an aggregate query answers one row"
    errors = tuple(plugin_error(row) for row in await pg.fetch(PLUGIN_ERRORS, PLUGIN_ERRORS_SHOWN))
    return PluginsStatus(int(counts["enabled"]), int(counts["disabled"]), int(counts["with_errors"]), errors)


@contextmanager
def _bounded(service: str, deadline: float, timeout: float) -> Iterator[None]:
    """Fail with `ServiceUnavailable(service)` if the deadline passes inside the block."""
    try:
        with trio.fail_at(deadline):
            yield
    except trio.TooSlowError:
        raise ServiceUnavailable(service, f"no answer within {timeout:g}s") from None


async def gather(settings: Settings, *, timeout: float = STATUS_TIMEOUT_SECONDS) -> Status:
    """Everything `status` shows, within `timeout` seconds in all (Kafka first, then Postgres)."""
    deadline = trio.current_time() + timeout
    with _bounded("kafka", deadline, timeout):
        groups = await kafka_lag(settings)
    with _bounded("postgres", deadline, timeout):
        async with open_postgres(settings.database_url, max_size=1) as pg:
            jobs = await job_queue(pg)
            plugins = await plugins_status(pg)
    return Status(groups, jobs, plugins)
