"""Step 4: build the ClickHouse rows of an event (REFERENCE.md 5.1) as JSONEachRow lines.

A row is serialized once, here: the direct sink joins lines into an insert block, the Kafka sink
produces each line as a message and the writer joins them again, with no re-parsing on the way.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from plugin_server.core import jsonx
from plugin_server.ingestion.event import IngestionWarning, PipelineEvent
from plugin_server.storage.tables import (
    EVENTS_TABLE,
    WARNINGS_TABLE,
    Row,
    ch_datetime,
)

# Rows of events that have no person (none resolved) carry PostHog's empty values.
NO_PERSON = "00000000-0000-0000-0000-000000000000"
NO_PERSON_CREATED_AT = "1970-01-01 00:00:00.000"


@functools.lru_cache(maxsize=1 << 14)
def _ch_created_at(value: dt.datetime) -> str:
    """`ch_datetime` to milliseconds, for creation times: every event of a person or group repeats one."""
    return ch_datetime(value)[:23]


def safe_json(value: Any) -> str:
    """JSON text that is valid UTF-8: lone surrogates become their escape text (safeClickhouseString)."""
    return jsonx.dumps_str(value)


def event_rows(event: PipelineEvent, *, created_at: str) -> list[Row]:
    """`created_at`: ingestion time as `ch_datetime` text, computed once per batch."""
    assert event.team_id is not None and event.resolved_timestamp is not None, "rows are built last"
    person = event.person
    row = {
        "uuid": event.uuid,
        "event": event.event,
        "properties": safe_json(event.properties),
        "timestamp": ch_datetime(event.resolved_timestamp),
        "team_id": event.team_id,
        "distinct_id": event.distinct_id,
        "elements_chain": event.elements_chain,
        "created_at": created_at,
        "person_id": person.uuid if person else NO_PERSON,
        "person_properties": _person_properties(person.properties, event.properties) if person else "{}",
        "person_created_at": _ch_created_at(person.created_at) if person else NO_PERSON_CREATED_AT,
        "_timestamp": event.source.timestamp_ms // 1000,  # DateTime takes unix seconds
        "_offset": event.source.offset,
        "_partition": event.source.partition,
    }
    for group in event.groups:
        row[f"$group_{group.index}"] = group.key
        row[f"group{group.index}_properties"] = jsonx.dumps_str(group.properties)
        row[f"group{group.index}_created_at"] = (
            _ch_created_at(group.created_at) if group.created_at else NO_PERSON_CREATED_AT
        )
    rows = [Row(EVENTS_TABLE, jsonx.dumps(row), event.uuid.encode(), event.team_id)]
    rows.extend(warning_row(w, team_id=event.team_id, event=event, at=created_at) for w in event.warnings)
    return rows


def _person_properties(person: dict[str, Any], properties: dict[str, Any]) -> str:
    """PostHog: the person's properties with the event's own `$set` on top."""
    set_ = properties.get("$set")
    return jsonx.dumps_str({**person, **set_} if isinstance(set_, dict) and set_ else person)


def warning_row(warning: IngestionWarning, *, team_id: int, event: PipelineEvent, at: str) -> Row:
    row = {
        "team_id": team_id,
        "source": "plugin-server",
        "type": warning.type,
        "details": safe_json(warning.details),
        "timestamp": at,
        "_timestamp": event.source.timestamp_ms // 1000,
        "_offset": event.source.offset,
        "_partition": event.source.partition,
    }
    return Row(WARNINGS_TABLE, jsonx.dumps(row))
