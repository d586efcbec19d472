import dataclasses
import datetime as dt
import json
import re

import pytest

from plugin_server.ingestion.event import IngestionWarning, PipelineEvent, Source
from plugin_server.ingestion.normalize import normalize
from plugin_server.ingestion.row import NO_PERSON, event_rows, safe_json, warning_row
from plugin_server.storage.tables import COLUMNS, EVENTS_TABLE, WARNINGS_TABLE, Row, ch_datetime
from plugin_server.storage.teams import Team

UTC = dt.UTC
TEAM = Team(id=7, uuid="00000000-0000-4000-8000-000000000007", name="T", api_token="tok", anonymize_ips=False)
UUID = "017f3a4e-4f3c-7d7e-9c6b-3a2b1c0d9e8f"
SOURCE = Source("events_plugin_ingestion", 4, 1234, 1_577_880_005_678)  # 2020-01-01 12:00:05.678 UTC
RESOLVED = dt.datetime(2020, 1, 1, 12, 0, 0, 200_000, tzinfo=UTC)
CREATED = "2020-01-01 12:00:06.123456"  # ch_datetime text, as the pipeline passes it once per batch
CH_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$")


def ready_event(**changes) -> PipelineEvent:
    base = PipelineEvent(
        source=SOURCE,
        raw=b"{}",
        uuid=UUID,
        distinct_id="user-1",
        event="$pageview",
        properties={"$browser": "Firefox", "n": 1},
        now="2020-01-01T12:00:05.200Z",
        token="tok",
        team_id=TEAM.id,
        team=TEAM,
        resolved_timestamp=RESOLVED,
        elements_chain="a:nth-child=1",
    )
    return dataclasses.replace(base, **changes)


def decode(row: Row) -> dict:
    assert b"\n" not in row.line and b"\r" not in row.line
    text = row.line.decode("utf-8")  # valid UTF-8, or this raises
    value = json.loads(text)
    # Columns in table order; group columns only for the groups an event names (ClickHouse fills
    # the others with their defaults).
    assert list(value) == [c for c in COLUMNS[row.table] if c in value]
    assert all(c in value for c in COLUMNS[row.table] if not _group_column(c))
    return value


def _group_column(name: str) -> bool:
    return name.startswith(("$group_", "group"))


# --- ch_datetime ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (dt.datetime(2020, 1, 1, 12, 0, 5, 200_000, tzinfo=UTC), "2020-01-01 12:00:05.200000"),
        (dt.datetime(2020, 2, 23, 2, 15, tzinfo=UTC), "2020-02-23 02:15:00.000000"),
        (dt.datetime(2020, 1, 1, 1, 0, 0, 1, tzinfo=dt.timezone(dt.timedelta(hours=2))), "2019-12-31 23:00:00.000001"),
        (dt.datetime(1970, 1, 1, tzinfo=UTC), "1970-01-01 00:00:00.000000"),
        (dt.datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), "9999-12-31 23:59:59.999999"),
    ],
    ids=["millis", "whole-minute", "converted-to-utc", "epoch", "max"],
)
def test_ch_datetime(value, text):
    assert ch_datetime(value) == text
    assert CH_DATETIME.match(text)


# --- safe_json --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text", "decoded"),
    [
        ({"a": "\ud800"}, '{"a":"\\\\ud800"}', {"a": "\\ud800"}),
        ({"a": "x\udfffy"}, '{"a":"x\\\\udfffy"}', {"a": "x\\udfffy"}),
        ({"\udc80": 1}, '{"\\\\udc80":1}', {"\\udc80": 1}),
        (["\ud83d", "ok"], '["\\\\ud83d","ok"]', ["\\ud83d", "ok"]),
        ({"a": "é😀"}, '{"a":"é😀"}', {"a": "é😀"}),
        ({"a": 'q"\\\n'}, '{"a":"q\\"\\\\\\n"}', {"a": 'q"\\\n'}),
        ({"a": 1, "b": [True, None]}, '{"a":1,"b":[true,null]}', {"a": 1, "b": [True, None]}),
        ("\ud800\udc00", '"\\\\ud800\\\\udc00"', "\\ud800\\udc00"),
    ],
    ids=["high-surrogate", "low-surrogate-inside", "surrogate-key", "in-list", "non-ascii-kept",
         "escapes", "plain", "unpaired-pair-as-two-code-points"],
)  # fmt: skip
def test_safe_json(value, text, decoded):
    result = safe_json(value)
    assert result == text
    assert json.loads(result.encode("utf-8")) == decoded
    assert "\n" not in result


# --- event rows -------------------------------------------------------------------------------


def test_event_row_has_every_column_and_its_value():
    rows = event_rows(ready_event(), created_at=CREATED)
    assert [r.table for r in rows] == [EVENTS_TABLE]
    (row,) = rows
    assert row.key == UUID.encode()
    assert decode(row) == {
        "uuid": UUID,
        "event": "$pageview",
        "properties": '{"$browser":"Firefox","n":1}',
        "timestamp": "2020-01-01 12:00:00.200000",
        "team_id": 7,
        "distinct_id": "user-1",
        "elements_chain": "a:nth-child=1",
        "created_at": "2020-01-01 12:00:06.123456",
        "person_id": NO_PERSON,
        "person_properties": "{}",
        "person_created_at": "1970-01-01 00:00:00.000",
        "_timestamp": 1577880005,  # unix seconds: ClickHouse DateTime reads them
        "_offset": 1234,
        "_partition": 4,
    }


@pytest.mark.parametrize(
    "changes",
    [
        {"properties": {"bad": "\ud800", "\udfff": "k"}},
        {"distinct_id": "id-\udc00"},
        {"event": "ev\ud801ent"},
        {"elements_chain": "a\udfff"},
        {"properties": {"multi": "line\nbreak", "nul": "\x00", "emoji": "🎉"}},
    ],
    ids=["surrogates-in-properties", "surrogate-distinct-id", "surrogate-event", "surrogate-chain", "control-chars"],
)
def test_rows_are_single_line_utf8_json_with_exact_columns(changes):
    event = ready_event(**changes, warnings=(IngestionWarning("w", {"value": "\ud800", "text": "a\nb"}),))
    rows = event_rows(event, created_at=CREATED)
    assert [r.table for r in rows] == [EVENTS_TABLE, WARNINGS_TABLE]
    for row in rows:
        value = decode(row)
        for column in ("properties", "person_properties", "details"):
            if column in value:
                json.loads(value[column])  # nested JSON columns are JSON too


def test_properties_column_round_trips():
    properties = {"nested": {"list": [1, 2.5, "x"], "null": None}, "é": "ü"}
    (row,) = event_rows(ready_event(properties=properties), created_at=CREATED)
    assert json.loads(decode(row)["properties"]) == properties


def test_columns_tables():
    assert set(COLUMNS) == {
        EVENTS_TABLE,
        WARNINGS_TABLE,
        "person",
        "person_distinct_id2",
        "groups",
        "plugin_log_entries",
    }
    for columns in COLUMNS.values():
        assert len(columns) == len(set(columns))


@pytest.mark.parametrize(
    "missing", [{"team_id": None}, {"resolved_timestamp": None}], ids=["no-team-id", "no-resolved-timestamp"]
)
def test_rows_need_a_team_and_a_timestamp(missing):
    with pytest.raises(AssertionError):
        event_rows(ready_event(**missing), created_at=CREATED)


# --- warnings ---------------------------------------------------------------------------------


def test_each_warning_becomes_an_ingestion_warnings_row():
    warnings = (
        IngestionWarning("ignored_invalid_timestamp", {"eventUuid": UUID, "field": "sent_at"}),
        IngestionWarning("event_timestamp_in_future", {"result": "2030-01-01T00:00:00.000Z"}),
    )
    rows = event_rows(ready_event(warnings=warnings), created_at=CREATED)
    assert [r.table for r in rows] == [EVENTS_TABLE, WARNINGS_TABLE, WARNINGS_TABLE]
    for row, warning in zip(rows[1:], warnings, strict=True):
        assert row.key is None
        value = decode(row)
        assert value == {
            "team_id": 7,
            "source": "plugin-server",
            "type": warning.type,
            "details": safe_json(warning.details),
            "timestamp": "2020-01-01 12:00:06.123456",
            "_timestamp": 1577880005,  # unix seconds: ClickHouse DateTime reads them
            "_offset": 1234,
            "_partition": 4,
        }
        assert json.loads(value["details"]) == warning.details


def test_warnings_from_normalize_become_rows():
    event = ready_event(resolved_timestamp=None, timestamp="notISO", sent_at="also-bad")
    wallclock = dt.datetime(2021, 1, 1, tzinfo=UTC)
    normalized = normalize(event, wallclock=wallclock).value
    rows = event_rows(normalized, created_at=CREATED)
    assert [r.table for r in rows] == [EVENTS_TABLE, WARNINGS_TABLE, WARNINGS_TABLE]
    assert decode(rows[0])["timestamp"] == "2021-01-01 00:00:00.000000"
    details = [json.loads(decode(r)["details"]) for r in rows[1:]]
    assert [(d["field"], d["value"]) for d in details] == [("sent_at", "also-bad"), ("timestamp", "notISO")]
    assert {decode(r)["type"] for r in rows[1:]} == {"ignored_invalid_timestamp"}


def test_warning_row_directly():
    row = warning_row(IngestionWarning("x", {}), team_id=3, event=ready_event(), at=CREATED)
    assert row.table == WARNINGS_TABLE
    assert decode(row)["team_id"] == 3 and decode(row)["details"] == "{}"
