import datetime as dt
import json
import uuid

import pytest

from plugin_server.ingestion.dead_letter import (
    NO_SOURCE,
    REJECTED_BY_CLICKHOUSE,
    dead_letter_message,
    rejected_row_message,
)
from plugin_server.ingestion.event import PipelineEvent, Source
from plugin_server.ingestion.results import DeadLetter

AT = dt.datetime(2020, 1, 1, 14, 0, 5, 987_000, tzinfo=dt.timezone(dt.timedelta(hours=2)))
AT_TEXT = "2020-01-01 12:00:05"
SOURCE = Source("events_plugin_ingestion", 2, 77, 1_577_880_000_000)
KEYS = {
    "id", "event_uuid", "event", "distinct_id", "team_id", "site_url", "ip", "properties", "now",
    "error_timestamp", "raw_payload", "error_location", "error", "reason", "tags", "kafka_topic",
    "kafka_partition", "kafka_offset",
}  # fmt: skip


def message(raw: bytes | None, *, event: PipelineEvent | None = None, location: str = "parse") -> dict:
    value = dead_letter_message(
        raw=raw, source=SOURCE, result=DeadLetter("invalid_json", "boom: bad"), location=location, at=AT, event=event
    )
    text = value.decode("utf-8")
    assert "\n" not in text
    payload = json.loads(text)
    assert set(payload) == KEYS
    return payload


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (b'{"event": "x"}', '{"event": "x"}'),
        (b"\xff\xfe{bad", "\ufffd\ufffd{bad"),
        (b"caf\xc3\xa9", "café"),
        (b"caf\xc3", "caf\ufffd"),
        (b"", ""),
        (None, ""),
        (b"line1\nline2\x00", "line1\nline2\x00"),
        (b"\xed\xa0\x80", "\ufffd\ufffd\ufffd"),
    ],
    ids=["json", "undecodable", "utf8", "truncated-utf8", "empty", "none", "control-chars", "encoded-surrogate"],
)
def test_raw_payload_is_the_original_bytes_as_text(raw, shown):
    assert message(raw)["raw_payload"] == shown


def test_fields_without_an_event():
    payload = message(b"{}")
    assert uuid.UUID(payload.pop("id"))
    assert payload == {
        "event_uuid": "",
        "event": "",
        "distinct_id": "",
        "team_id": None,
        "site_url": "",
        "ip": "",
        "properties": "{}",
        "now": AT_TEXT,
        "error_timestamp": AT_TEXT,
        "raw_payload": "{}",
        "error_location": "plugin_server_ingest_event:parse",
        "error": "Event ingestion failed. Error: boom: bad",
        "reason": "invalid_json",
        "tags": ["plugin_server", "ingest_event"],
        "kafka_topic": "events_plugin_ingestion",
        "kafka_partition": 2,
        "kafka_offset": 77,
    }


def test_fields_from_the_event():
    event = PipelineEvent(
        source=SOURCE,
        raw=b"raw",
        uuid="017f3a4e-4f3c-7d7e-9c6b-3a2b1c0d9e8f",
        distinct_id="user-\ud800",
        event="$pageview",
        properties={"a": 1, "s": "\udfff"},
        now="",
        ip="10.0.0.1",
        site_url=None,
        team_id=5,
    )
    payload = message(b"raw", event=event, location="resolve_team")
    assert payload["event_uuid"] == event.uuid
    assert (payload["event"], payload["distinct_id"], payload["team_id"]) == ("$pageview", "user-\\ud800", 5)
    assert (payload["ip"], payload["site_url"]) == ("10.0.0.1", "")
    assert json.loads(payload["properties"]) == {"a": 1, "s": "\\udfff"}
    assert payload["error_location"] == "plugin_server_ingest_event:resolve_team"


def test_each_message_has_its_own_id():
    assert message(b"x")["id"] != message(b"x")["id"]


def test_rejected_row_message():
    line = b'{"uuid": "not-a-uuid"}'
    value = rejected_row_message(line=line, error="Cannot parse UUID", location="writer", at=AT)
    payload = json.loads(value)
    assert payload["reason"] == REJECTED_BY_CLICKHOUSE
    assert payload["raw_payload"] == line.decode()
    assert payload["error"] == "Event ingestion failed. Error: Cannot parse UUID"
    assert payload["error_location"] == "plugin_server_ingest_event:writer"
    assert (payload["kafka_topic"], payload["kafka_partition"], payload["kafka_offset"]) == ("", -1, -1)
    assert NO_SOURCE == Source("", -1, -1, 0)
