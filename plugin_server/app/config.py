"""One typed settings object, read once from the environment at start-up.

Names follow PostHog's plugin-server where it has them (see REFERENCE.md 7.1). Every field has a
default and a one-line help that `plugin-server --help` prints. A bad value raises `ConfigError`
naming the variable, the value and what was expected; the CLI turns that into exit code 2.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from plugin_server.core.errors import ConfigError

MODES = ("all", "ingestion", "async", "jobs", "scheduler", "writer", "api")
SINKS = ("direct", "kafka")
LOG_LEVELS = ("debug", "info", "warning", "error")


# --- parsers: each takes the raw string and returns the value or raises ValueError(expected) ---


def _int(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        expected = f"an integer >= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(expected) from None
        if value < minimum or (maximum is not None and value > maximum):
            raise ValueError(expected)
        return value

    return parse


def _float(minimum: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        expected = f"a number >= {minimum}"
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(expected) from None
        if not value >= minimum:  # also rejects NaN
            raise ValueError(expected)
        return value

    return parse


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError("one of " + ", ".join(choices))
        return value

    return parse


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("y", "yes", "t", "true", "on", "1"):
        return True
    if value in ("n", "no", "f", "false", "off", "0", ""):
        return False
    raise ValueError("a boolean (true/false, yes/no, 1/0)")


def _text(raw: str) -> str:
    return raw


def _topic(raw: str) -> str:
    value = raw.strip()
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    if not value or len(value) > 249 or value in (".", "..") or not set(value) <= allowed:
        raise ValueError("a Kafka topic name (letters, digits, '.', '_', '-')")
    return value


def _url(schemes: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        expected = "a URL like " + " or ".join(f"{s}://..." for s in schemes)
        value = raw.strip()
        try:
            parts = urllib.parse.urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ValueError(expected) from None
        if parts.scheme not in schemes:
            raise ValueError(expected)
        if parts.scheme != "chdb" and not parts.hostname:
            raise ValueError(expected)
        if parts.scheme == "chdb" and not parts.path.strip("/"):
            raise ValueError("a chdb URL with a data directory, like chdb:///var/lib/plugin-server/clickhouse")
        return value

    return parse


def _hosts(raw: str) -> str:
    expected = "comma-separated host:port pairs, like kafka1:9092,kafka2:9092"
    hosts = [h.strip() for h in raw.split(",") if h.strip()]
    if not hosts:
        raise ValueError(expected)
    for host in hosts:
        name, sep, port = host.rpartition(":")
        if not sep or not name or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(expected)
    return ",".join(hosts)


def setting(default: Any, parse: Callable[[str], Any], help: str) -> Any:
    return field(default=default, metadata={"parse": parse, "help": help})


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server reads from its environment. Field name = variable name, lowercased."""

    plugin_server_mode: str = setting("all", _choice(MODES), "Which capabilities this process runs.")
    database_url: str = setting(
        "postgres://postgres@127.0.0.1:5432/posthog",
        _url(("postgres", "postgresql")),
        "Postgres: teams, persons, plugins, jobs.",
    )
    redis_url: str = setting("redis://127.0.0.1:6379", _url(("redis", "rediss")), "Redis: caches, locks, pub/sub.")
    kafka_hosts: str = setting("127.0.0.1:9092", _hosts, "Kafka bootstrap servers, comma-separated host:port.")
    kafka_consumption_topic: str = setting("events_plugin_ingestion", _topic, "Topic capture writes events to.")
    kafka_dead_letter_topic: str = setting(
        "events_dead_letter_queue", _topic, "Topic for events that cannot be ingested, with the reason."
    )
    clickhouse_json_events_kafka_topic: str = setting(
        "clickhouse_events_json", _topic, "Topic of ClickHouse event rows (kafka sink and writer)."
    )
    clickhouse_ingestion_warnings_kafka_topic: str = setting(
        "clickhouse_ingestion_warnings", _topic, "Topic of ingestion warning rows (kafka sink and writer)."
    )
    clickhouse_person_kafka_topic: str = setting(
        "clickhouse_person", _topic, "Topic of person rows (kafka sink and writer)."
    )
    clickhouse_person_distinct_id_kafka_topic: str = setting(
        "clickhouse_person_distinct_id", _topic, "Topic of person distinct id rows (kafka sink and writer)."
    )
    clickhouse_groups_kafka_topic: str = setting(
        "clickhouse_groups", _topic, "Topic of group rows (kafka sink and writer)."
    )
    clickhouse_plugin_log_entries_kafka_topic: str = setting(
        "plugin_log_entries", _topic, "Topic of plugin log entries (kafka sink and writer)."
    )
    kafka_consumer_group: str = setting("ingestion", _text, "Consumer group of the ingestion workers.")
    kafka_writer_group: str = setting("clickhouse-writer", _text, "Consumer group of the ClickHouse writer.")
    kafka_async_group: str = setting(
        "clickhouse-plugin-server-async", _text, "Consumer group of the on_event / export_events handlers."
    )
    clickhouse_url: str = setting(
        "http://default:@127.0.0.1:8123/default",
        _url(("http", "https", "chdb")),
        "ClickHouse: http(s)://user:password@host:8123/database, or chdb:///path for the embedded engine.",
    )
    ingestion_sink: str = setting(
        "direct",
        _choice(SINKS),
        "direct: workers insert into ClickHouse; kafka: workers produce rows for the writer.",
    )
    worker_concurrency: int = setting(1, _int(1, 64), "Ingestion worker processes (each a consumer).")
    tasks_per_worker: int = setting(10, _int(1, 10_000), "Concurrent distinct_id groups per batch in a worker.")
    task_timeout: float = setting(
        30.0, _float(0.01), "Seconds a plugin function call may run (PostHog's TASK_TIMEOUT)."
    )
    plugin_threads: int = setting(4, _int(1, 256), "Worker threads running plugin code in each process.")
    plugin_fetch_allow_private: bool = setting(
        False, _bool, "Let plugins' meta.fetch reach loopback, link-local and private addresses."
    )
    plugins_reload_pubsub_channel: str = setting(
        "reload-plugins", str, "Redis channel whose messages make every process reload plugins."
    )
    gc_gen0_threshold: int = setting(
        100_000,
        _int(0, 10_000_000),
        "Allocations between the garbage collector's youngest collections (0: Python's default, 700). "
        "See plugin_server/core/gc_policy.py.",
    )
    ingestion_batch_size: int = setting(2000, _int(1, 100_000), "Most messages taken from Kafka per batch.")
    ingestion_batch_wait_ms: int = setting(
        50, _int(0, 60_000), "Longest wait for a batch to fill before processing what arrived."
    )
    http_host: str = setting("127.0.0.1", _text, "Address the HTTP server binds (0.0.0.0 for all interfaces).")
    http_port: int = setting(6738, _int(0, 65535), "Port of /_health, /_ready, /_metrics and the API.")
    plugin_server_admin_token: str = setting(
        "", _text, "Bearer token for admin endpoints such as /query (empty: they are disabled)."
    )
    team_cache_ttl_seconds: float = setting(
        60.0, _float(0.0), "How long a team looked up by token stays cached in the process."
    )
    shutdown_timeout_seconds: float = setting(
        30.0, _float(0.0), "Longest a graceful stop waits for in-flight batches to be written."
    )
    drain_timeout_seconds: float = setting(
        120.0, _float(0.0), "dev: longest a stop waits to ingest what is still queued in the embedded broker."
    )
    drain_on_stop: bool = setting(
        False,
        _bool,
        "On SIGTERM, consume until there is no lag before stopping (dev: the embedded broker keeps "
        "messages only in memory).",
    )
    healthcheck_max_stale_seconds: float = setting(
        7200.0, _float(1.0), "Health fails if a consumer with lag has not progressed for this long."
    )
    plugin_server_parent_pid: int = setting(
        0, _int(0), "Internal, set by the worker pool: stop gracefully when this process is gone (0: never)."
    )
    log_level: str = setting("info", _choice(LOG_LEVELS), "Log level: debug, info, warning, error.")
    log_format: str = setting("json", _choice(("json", "console")), "Log format: json lines, or console.")

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Build settings from `environ`; `overrides` (already typed) win, e.g. from CLI flags."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = f.name.upper()
            if f.name in overrides and overrides[f.name] is not None:
                raw = str(overrides[f.name])
                source = f"--{f.name.replace('_', '-')}" if f.name != "plugin_server_mode" else "--mode"
            elif name in environ:
                raw = environ[name]
                source = name
            else:
                continue
            try:
                values[f.name] = f.metadata["parse"](raw)
            except ValueError as exc:
                raise ConfigError(variable=source, value=raw, expected=str(exc)) from None
        return cls(**values)

    def as_environ(self) -> dict[str, str]:
        """Every setting as the environment variable that would produce it (for child processes)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name.upper()] = ("true" if value else "false") if isinstance(value, bool) else str(value)
        return out

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def describe() -> list[tuple[str, str, str]]:
    """(VARIABLE, default, help) for every setting, in declaration order, for --help."""
    rows = []
    for f in dataclasses.fields(Settings):
        default = f.default
        shown = ("true" if default else "false") if isinstance(default, bool) else str(default)
        rows.append((f.name.upper(), shown if shown != "" else '""', f.metadata["help"]))
    return rows
