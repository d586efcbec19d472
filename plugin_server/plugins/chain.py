"""Running a team's `process_event` chain over events, in a worker thread (REFERENCE.md 6.5).

Synchronous on purpose: plugin_server/plugins/runtime.py calls `run_chain` through `trio.to_thread.run_sync`, so a
plugin never blocks the event loop. Per event, every ready config's `process_event` runs in
`order`, each on a copy of the previous plugin's output:
- returning None drops the event (later plugins do not see it);
- raising, timing out or returning something unusable is that plugin's error: it is logged and
  reported, and the event continues with the value it had before that plugin;
- a plugin may change `event`, `distinct_id`, `properties`, `timestamp` and `ip`; changing
  `team_id` or `uuid` is an error (PostHog: "Plugin tried to change event.team_id");
- a backing service failing inside a meta call (Postgres, Redis down) fails the call with that
  retryable error (plugin_server/plugins/meta/outage.py), which is not the plugin's error: it
  stops the chunk, so the batch is retried rather than ingested without the plugin's work.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

from plugin_server.core import metrics
from plugin_server.plugins.loaded import LoadedConfig
from vm.errors import PluginTimeout, SandboxError

MAX_DISTINCT_ID_CHARS = 200
EDITABLE = ("event", "distinct_id", "properties", "timestamp", "ip")
# Consecutive timeouts after which a config is disabled: a plugin that times out on every event
# would otherwise cost TASK_TIMEOUT per event, for ever.
MAX_CONSECUTIVE_TIMEOUTS = 3


class PluginOutputError(Exception):
    """A plugin returned an event the pipeline cannot take."""


@dataclass
class Progress:
    """What the thread is doing, for the watchdog on the trio side (plain attribute writes)."""

    config: LoadedConfig | None = None
    since: float = 0.0


@dataclass
class ChainReport:
    """What happened in one chunk besides the results, for the trio side to persist."""

    errors: dict[int, dict[str, Any]] = field(default_factory=dict)  # config id -> last error
    error_counts: dict[int, int] = field(default_factory=dict)
    disable: dict[int, str] = field(default_factory=dict)  # config id -> reason


def accept(original: dict[str, Any], returned: Any) -> dict[str, Any]:
    """The event a plugin returned, checked against the one it was given (pure)."""
    if not isinstance(returned, dict):
        raise PluginOutputError(f"process_event must return a dict or None, not {type(returned).__name__}")
    if returned.get("team_id", original["team_id"]) != original["team_id"]:
        raise PluginOutputError("plugin tried to change event.team_id")
    if returned.get("uuid", original["uuid"]) != original["uuid"]:
        raise PluginOutputError("plugin tried to change event.uuid")
    out = dict(original)
    for key in EDITABLE:
        if key in returned:
            out[key] = returned[key]
    if not isinstance(out["event"], str) or not out["event"]:
        raise PluginOutputError("event.event must be a non-empty string")
    if not isinstance(out["properties"], dict):
        raise PluginOutputError("event.properties must be a dict")
    distinct_id = out["distinct_id"]
    if isinstance(distinct_id, bool) or not isinstance(distinct_id, str | int | float):
        raise PluginOutputError("event.distinct_id must be a string")
    distinct_id = str(distinct_id).strip()
    if not distinct_id or len(distinct_id) > MAX_DISTINCT_ID_CHARS:
        raise PluginOutputError(f"event.distinct_id must have 1 to {MAX_DISTINCT_ID_CHARS} characters")
    out["distinct_id"] = distinct_id
    if out["ip"] is not None and not isinstance(out["ip"], str):
        raise PluginOutputError("event.ip must be a string or None")
    return out


def run_chain(
    chain: list[LoadedConfig], events: list[dict[str, Any]], progress: Progress, report: ChainReport
) -> list[dict[str, Any] | None]:
    """Each event through every ready config's process_event; None for a dropped event."""
    results: list[dict[str, Any] | None] = []
    # each config's call durations, added to plugin_call_seconds once per chunk (metrics.BulkHistogram)
    timed: list[tuple[LoadedConfig, list[float]]] = [(config, []) for config in chain]
    try:
        for event in events:
            current: dict[str, Any] | None = event
            for config, spent in timed:
                if current is None:
                    break
                if not config.ready or config.disabled:
                    continue
                current = _one(config, current, progress, report, spent)
            results.append(current)
    finally:
        progress.config = None
        for config, spent in timed:
            metrics.PLUGIN_CALL_SECONDS.add((str(config.row.config_id), "process_event"), spent)
    return results


def _one(
    config: LoadedConfig, event: dict[str, Any], progress: Progress, report: ChainReport, spent: list[float]
) -> dict[str, Any] | None:
    function = config.instance.exports.get("process_event")
    if function is None:
        return event
    started = time.monotonic()
    progress.config, progress.since = config, started
    try:
        returned = config.call(function, event)
        config.consecutive_timeouts = 0
        return None if returned is None else accept(event, returned)
    except PluginTimeout as exc:
        metrics.PLUGIN_TIMEOUTS.labels(str(config.row.config_id)).inc()
        config.consecutive_timeouts += 1
        _failed(config, report, exc, event)
        if config.consecutive_timeouts >= MAX_CONSECUTIVE_TIMEOUTS:
            report.disable[config.row.config_id] = f"{config.consecutive_timeouts} consecutive timeouts: {exc}"
            config.disabled = True  # at once, for the rest of this chunk too
    except (SandboxError, PluginOutputError) as exc:
        config.consecutive_timeouts = 0
        _failed(config, report, exc, event)
    finally:
        spent.append(time.monotonic() - started)
    return event


def _failed(config: LoadedConfig, report: ChainReport, exc: Exception, event: dict[str, Any]) -> None:
    message = str(exc)
    config.log("PLUGIN", "ERROR", f"process_event failed for event {event.get('uuid')}: {message}")
    config_id = config.row.config_id
    report.error_counts[config_id] = report.error_counts.get(config_id, 0) + 1
    report.errors[config_id] = error_record(exc, event)


def error_record(exc: Exception, event: dict[str, Any] | None = None) -> dict[str, Any]:
    """PostHog's `posthog_pluginconfig.error`: {message, time, name, stack?, event?}."""
    record: dict[str, Any] = {
        "message": str(exc),
        "time": dt.datetime.now(dt.UTC).isoformat(),
        "name": getattr(exc, "error_type", None) or type(exc).__name__,
    }
    if traceback := getattr(exc, "traceback", ""):
        record["stack"] = traceback
    if event is not None:
        record["event"] = {k: event.get(k) for k in ("uuid", "event", "distinct_id")}
    return record
