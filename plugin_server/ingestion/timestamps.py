"""Event timestamp resolution, as PostHog's newer `parseEventTimestamp` (REFERENCE.md 2.2).

Pure: the wall clock comes in as an argument. Returns the UTC timestamp and the ingestion
warnings it produced.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import math
from typing import Any

from plugin_server.ingestion.event import IngestionWarning

UTC = dt.UTC
# PostHog clamps results further ahead than this to `now`: clocks are wrong, but not by a day.
FUTURE_LIMIT = dt.timedelta(hours=23)


def parse_date(value: Any) -> dt.datetime | None:
    """ISO-8601 (zone or naive = UTC) or RFC 2822; None if it is not a date we can read."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        parsed = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def _offset_ms(value: Any) -> float | None:
    """The offset in milliseconds when it counts, as JavaScript's `if (offset)` decides: zero, NaN,
    booleans and junk do not. An infinite or overflowing offset counts, and makes the result invalid."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    except OverflowError:  # an int too large for a float
        number = math.inf if int(value) > 0 else -math.inf
    return None if not number or math.isnan(number) else number


def iso(value: dt.datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _shown(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def resolve_timestamp(
    *,
    timestamp: Any,
    sent_at: Any,
    offset: Any,
    now: Any,
    properties: dict[str, Any],
    wallclock: dt.datetime,
    event_uuid: str,
    event_name: str,
) -> tuple[dt.datetime, tuple[IngestionWarning, ...]]:
    warnings: list[IngestionWarning] = []
    now_at = parse_date(now) or wallclock  # capture always sends `now`; be safe if it did not

    sent_at_at = None
    if sent_at and not properties.get("$ignore_sent_at"):
        sent_at_at = parse_date(sent_at)
        if sent_at_at is None:
            warnings.append(
                IngestionWarning(
                    "ignored_invalid_timestamp",
                    {"eventUuid": event_uuid, "field": "sent_at", "value": _shown(sent_at), "reason": "unparsable"},
                )
            )

    parsed: dt.datetime | None = now_at
    offset_ms = _offset_ms(offset)
    stage_done = False
    if timestamp:
        ts = parse_date(timestamp)
        if sent_at_at is None or ts is None:
            parsed, stage_done = ts, True
        else:
            try:
                parsed = now_at + (ts - sent_at_at)
            except OverflowError:
                parsed = None
    if not stage_done and offset_ms is not None:
        try:
            parsed = now_at - dt.timedelta(milliseconds=offset_ms)
        except (OverflowError, ValueError):
            parsed = None

    if parsed is not None and parsed - now_at > FUTURE_LIMIT:
        warnings.append(
            IngestionWarning(
                "event_timestamp_in_future",
                {
                    "timestamp": _shown(timestamp),
                    "sentAt": _shown(sent_at),
                    "offset": _shown(offset),
                    "now": _shown(now),
                    "result": iso(parsed),
                    "eventUuid": event_uuid,
                    "eventName": event_name,
                },
            )
        )
        parsed = now_at

    if parsed is None:
        warnings.append(
            IngestionWarning(
                "ignored_invalid_timestamp",
                {"eventUuid": event_uuid, "field": "timestamp", "value": _shown(timestamp), "reason": "unparsable"},
            )
        )
        parsed = wallclock
    return parsed, tuple(warnings)
