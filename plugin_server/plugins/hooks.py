"""`on_event` and `export_events`: plugins that see events after they were written
(REFERENCE.md 6.5, 6.6), in worker threads like plugin_server/plugins/chain.py.

- `processed_event(row)` turns a ClickHouse events row (as the sinks write it) into PostHog's
  processed event: uuid, team_id, distinct_id, event, timestamp (ISO), properties, elements_chain,
  person, `$set`, `$set_once`, ip. Plugins get a copy each; they cannot change what was written.
- `export_batches(config, events)` applies the config's `exportEventsToIgnore` and splits by
  `exportEventsBufferBytes` (PostHog's keys and bounds). The consumer's batch is the buffer, so
  the age limit is the async consumer's batch wait: offsets are committed only after every
  export of the batch ran, so a crash never loses an event to be exported.
- A `RetryError` from `export_events` is reported (`AsyncReport.retries`); the runtime enqueues
  the batch as the job `export_events_with_retry` at the delay of `EXPORT_RETRY`
  (plugin_server/core/retry.py; PostHog: 3 s * 2^(retries+1), at most 15 retries); the job runner
  calls `export_events` again.
- A service outage met inside meta is not the plugin's error: the call raises it, retryable
  (plugin_server/plugins/meta/outage.py), and the consumer retries the batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from plugin_server.core import jsonx, metrics
from plugin_server.plugins.chain import Progress, error_record
from plugin_server.plugins.loaded import LoadedConfig
from vm.errors import PluginRuntimeError, PluginTimeout, SandboxError

EXPORT_RETRY_JOB = "export_events_with_retry"
BUFFER_BYTES = (1_048_576, 1, 100 * 1_048_576)  # default, min, max (exportEventsBufferBytes)


def processed_event(row: dict[str, Any]) -> dict[str, Any]:
    """PostHog's onEvent event from an events row (JSON columns parsed)."""
    properties = _json(row.get("properties"), {})
    timestamp = str(row.get("timestamp", ""))
    return {
        "uuid": row.get("uuid"), "team_id": row.get("team_id"), "distinct_id": row.get("distinct_id"),
        "event": row.get("event"), "timestamp": timestamp.replace(" ", "T") + ("Z" if timestamp else ""),
        "properties": properties, "elements_chain": row.get("elements_chain", ""),
        "person": {
            "uuid": row.get("person_id"), "properties": _json(row.get("person_properties"), {}),
            "created_at": row.get("person_created_at"),
        },
        "$set": properties.get("$set"), "$set_once": properties.get("$set_once"), "ip": properties.get("$ip"),
    }  # fmt: skip


def _json(text: Any, default: Any) -> Any:
    if not isinstance(text, str):
        return default
    try:
        return jsonx.loads(text)
    except ValueError:
        return default


def export_batches(config: dict[str, Any], events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The config's events to export, in batches of at most exportEventsBufferBytes (pure)."""
    ignore = {name.strip() for name in str(config.get("exportEventsToIgnore", "")).split(",") if name.strip()}
    limit = _clamped(config.get("exportEventsBufferBytes"), *BUFFER_BYTES)
    batches: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for event in events:
        if event.get("event") in ignore:
            continue
        event_size = len(jsonx.dumps(event))
        if current and size + event_size > limit:
            batches.append(current)
            current, size = [], 0
        current.append(event)
        size += event_size
    if current:
        batches.append(current)
    return batches


def _clamped(raw: Any, default: int, minimum: int, maximum: int) -> int:
    try:
        value = int(str(raw).strip())
    except (TypeError, ValueError):
        return default
    return min(max(value, minimum), maximum)


@dataclass
class AsyncReport:
    errors: dict[int, dict[str, Any]] = field(default_factory=dict)  # config id -> last error
    retries: list[tuple[LoadedConfig, list[dict[str, Any]]]] = field(default_factory=list)
    delivered: int = 0
    failed: int = 0


def run_on_event(config: LoadedConfig, events: list[dict[str, Any]], progress: Progress, report: AsyncReport) -> None:
    function = config.instance.exports["on_event"]
    spent: list[float] = []  # added to plugin_call_seconds once, at the end (metrics.BulkHistogram)
    try:
        for event in events:
            started = time.monotonic()
            progress.config, progress.since = config, started
            try:
                config.call(function, event)
            except SandboxError as exc:
                _timed_out(config, exc)
                _failed(config, report, "on_event", exc, event)
            finally:
                spent.append(time.monotonic() - started)
    finally:
        progress.config = None
        metrics.PLUGIN_CALL_SECONDS.add((str(config.row.config_id), "on_event"), spent)


def run_export(config: LoadedConfig, batch: list[dict[str, Any]], progress: Progress, report: AsyncReport) -> None:
    """One export_events call; a RetryError asks for a retry, anything else fails the batch."""
    function = config.instance.exports["export_events"]
    started = time.monotonic()
    progress.config, progress.since = config, started
    try:
        config.call(function, batch)
        report.delivered += len(batch)
    except PluginRuntimeError as exc:
        if exc.error_type == "RetryError":
            report.retries.append((config, batch))
            config.log("PLUGIN", "WARN", f"export_events asked for a retry of {len(batch)} events: {exc.message}")
        else:
            report.failed += len(batch)
            _failed(config, report, "export_events", exc, None)
    except SandboxError as exc:
        _timed_out(config, exc)
        report.failed += len(batch)
        _failed(config, report, "export_events", exc, None)
    finally:
        progress.config = None
        metrics.PLUGIN_CALL_SECONDS.add((str(config.row.config_id), "export_events"), [time.monotonic() - started])


def _timed_out(config: LoadedConfig, exc: SandboxError) -> None:
    if isinstance(exc, PluginTimeout):
        metrics.PLUGIN_TIMEOUTS.labels(str(config.row.config_id)).inc()


def _failed(
    config: LoadedConfig, report: AsyncReport, method: str, exc: Exception, event: dict[str, Any] | None
) -> None:
    where = f" for event {event.get('uuid')}" if event else ""
    config.log("PLUGIN", "ERROR", f"{method} failed{where}: {exc}")
    report.errors[config.row.config_id] = error_record(exc, event)
