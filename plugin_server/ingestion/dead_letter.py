"""Dead letter queue messages (REFERENCE.md 1.4): the original payload, the reason, and where
it came from, so an operator can see why and replay it once the cause is fixed."""

from __future__ import annotations

import datetime as dt
import uuid as uuid_lib

from plugin_server.ingestion.event import PipelineEvent, Source
from plugin_server.ingestion.results import DeadLetter
from plugin_server.ingestion.row import safe_json


def _second(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def dead_letter_message(
    *,
    raw: bytes | None,
    source: Source,
    result: DeadLetter,
    location: str,
    at: dt.datetime,
    event: PipelineEvent | None = None,
) -> bytes:
    """The JSON value produced to the dead letter topic for one failed message."""
    payload = {
        "id": str(uuid_lib.uuid4()),
        "event_uuid": event.uuid if event else "",
        "event": event.event if event else "",
        "distinct_id": event.distinct_id if event else "",
        "team_id": event.team_id if event else None,
        "site_url": (event.site_url or "") if event else "",
        "ip": (event.ip or "") if event else "",
        "properties": safe_json(event.properties) if event else "{}",
        "now": _second(at),
        "error_timestamp": _second(at),
        "raw_payload": (raw or b"").decode("utf-8", errors="replace"),
        "error_location": f"plugin_server_ingest_event:{location}",
        "error": f"Event ingestion failed. Error: {result.detail}",
        "reason": result.reason,
        "tags": ["plugin_server", "ingest_event"],
        "kafka_topic": source.topic,
        "kafka_partition": source.partition,
        "kafka_offset": source.offset,
    }
    return safe_json(payload).encode()


REJECTED_BY_CLICKHOUSE = "clickhouse_rejected"
NO_SOURCE = Source("", -1, -1, 0)


def rejected_row_message(*, line: bytes, error: str, location: str, at: dt.datetime) -> bytes:
    """The dead letter for a row ClickHouse refused: the row itself is the payload."""
    return dead_letter_message(
        raw=line, source=NO_SOURCE, result=DeadLetter(REJECTED_BY_CLICKHOUSE, error), location=location, at=at
    )
