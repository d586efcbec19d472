import datetime as dt
import json

import pytest

from plugin_server.ingestion.dead_letter import (
    NO_SOURCE,
    dead_letter_message,
    rejected_row_message,
)
from plugin_server.ingestion.event import PipelineEvent, Source
from plugin_server.ingestion.results import DeadLetter
from plugin_server.ops import dlq
from plugin_server.storage.kafka.client import Message, Record

NOW = dt.datetime(2024, 5, 10, 12, 0, 0, tzinfo=dt.UTC)
AT = dt.datetime(2024, 5, 10, 11, 30, 0, tzinfo=dt.UTC)
SOURCE = Source("events_plugin_ingestion", 3, 41, 0)
CAPTURE = json.dumps({"token": "phc_x", "distinct_id": "d1", "uuid": "u", "data": "{}"})


def letter(raw: bytes | None, *, reason: str = "unknown_token", at: dt.datetime = AT, offset: int = 0) -> Message:
    value = dead_letter_message(raw=raw, source=SOURCE, result=DeadLetter(reason, "why"), location="teams", at=at)
    return Message("dlq", 1, offset, None, value, int(NOW.timestamp() * 1000))


# --- since -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW - dt.timedelta(minutes=30)),
        ("2h", NOW - dt.timedelta(hours=2)),
        ("7d", NOW - dt.timedelta(days=7)),
        ("1w", NOW - dt.timedelta(weeks=1)),
        ("45s", NOW - dt.timedelta(seconds=45)),
        ("0m", NOW),
        (" 2h ", NOW - dt.timedelta(hours=2)),
        ("2024-05-01T12:00:00Z", dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)),
        ("2024-05-01T14:00:00+02:00", dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)),
        ("2024-05-01 12:00:00", dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)),  # naive: UTC
        ("2024-05-01", dt.datetime(2024, 5, 1, tzinfo=dt.UTC)),
    ],
)
def test_since_parses_iso_and_relative(text, expected):
    assert dlq.parse_since(text, now=NOW) == expected


@pytest.mark.parametrize(
    "text",
    ["", "nope", "30", "m", "-2h", "2x", "2 h", "1.5h", "2H", "2024-13-01", "2024-05-01T25:00", "999999999w", "1h30m"],
)
def test_since_refuses_bad_values_with_what_it_expects(text):
    with pytest.raises(ValueError, match="expected ISO-8601"):
        dlq.parse_since(text, now=NOW)


# --- parsing and filtering -------------------------------------------------------------------------


def test_entry_carries_what_the_dead_letter_says():
    event = PipelineEvent(
        source=SOURCE, raw=b"", uuid="0190-x", distinct_id="d1", event="$pageview", properties={}, now="", team_id=7
    )
    value = dead_letter_message(
        raw=CAPTURE.encode(), source=SOURCE, result=DeadLetter("r", "bad"), location="x", at=AT, event=event
    )
    entry = dlq.parse_entry(Message("dlq", 2, 9, None, value, 0))
    assert dlq.list_line(entry, replayed=True) == {
        "dlq_partition": 2,
        "dlq_offset": 9,
        "reason": "r",
        "error": "Event ingestion failed. Error: bad",
        "error_timestamp": "2024-05-10 11:30:00",
        "event_uuid": "0190-x",
        "team_id": 7,
        "event": "$pageview",
        "distinct_id": "d1",
        "kafka_topic": "events_plugin_ingestion",
        "kafka_partition": 3,
        "kafka_offset": 41,
        "replayed": True,
    }
    assert entry.at == AT and entry.raw_payload == CAPTURE


@pytest.mark.parametrize("value", [b"", None, b"not json", b"[1, 2]", b'"text"', b"\xff"])
def test_a_message_that_is_not_a_dead_letter_is_listed_as_unreadable_and_never_replayed(value):
    entry = dlq.parse_entry(Message("dlq", 0, 5, None, value, 1_715_342_400_000))
    assert entry.reason == dlq.UNREADABLE and entry.error.startswith("not a dead letter")
    assert entry.at == dt.datetime(2024, 5, 10, 12, tzinfo=dt.UTC)  # the Kafka timestamp
    assert not dlq.replayable(entry)


def test_missing_or_odd_fields_do_not_break_parsing():
    value = json.dumps({"reason": 5, "team_id": True, "kafka_offset": "7", "error_timestamp": "later"}).encode()
    entry = dlq.parse_entry(Message("dlq", 0, 1, None, value, 1_715_342_400_000))
    assert (entry.reason, entry.team_id, entry.kafka_offset, entry.error_timestamp) == ("", None, None, "later")
    assert entry.at == dt.datetime(2024, 5, 10, 12, tzinfo=dt.UTC)  # unparsable error_timestamp: Kafka's


@pytest.mark.parametrize(
    ("reason", "since", "expected"),
    [
        (None, None, True),
        ("unknown_token", None, True),
        ("invalid_json", None, False),
        (None, AT, True),  # at T exactly: included
        (None, AT + dt.timedelta(seconds=1), False),
        (None, AT - dt.timedelta(days=1), True),
        ("unknown_token", AT - dt.timedelta(days=1), True),
        ("invalid_json", AT - dt.timedelta(days=1), False),
    ],
)
def test_filter_by_reason_and_since(reason, since, expected):
    entry = dlq.parse_entry(letter(CAPTURE.encode()))
    assert dlq.matches(entry, reason=reason, since=since) is expected


def test_an_entry_without_any_time_never_matches_a_since():
    entry = dlq.DeadLetterEntry(0, 0, "r", "", None)
    assert dlq.matches(entry) and not dlq.matches(entry, since=AT)


# --- replay decisions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        (CAPTURE, b"phc_x:d1"),
        (json.dumps({"token": "phc_é", "distinct_id": "ü", "data": "{}"}), "phc_é:ü".encode()),
        (json.dumps({"token": "phc_x"}), None),
        (json.dumps({"distinct_id": "d1"}), None),
        (json.dumps({"token": "", "distinct_id": "d1"}), None),
        (json.dumps({"token": "phc_x", "distinct_id": 42}), None),
        (json.dumps({"token": None, "distinct_id": "d1"}), None),
        (json.dumps({"data": json.dumps({"token": "phc_x", "distinct_id": "d1"})}), None),  # only the envelope
        ("[1, 2]", None),
        ("not json", None),
        ("", None),
    ],
)
def test_replay_key_is_token_colon_distinct_id_of_a_capture_envelope(payload, key):
    assert dlq.replay_key(payload) == key


def test_replay_record_is_the_raw_payload_to_the_ingestion_topic():
    entry = dlq.parse_entry(letter(CAPTURE.encode()))
    assert dlq.replay_record(entry, topic="ingest") == Record("ingest", CAPTURE.encode(), b"phc_x:d1")
    odd = dlq.parse_entry(letter("café {".encode()))
    assert dlq.replay_record(odd, topic="ingest") == Record("ingest", "café {".encode(), None)


def test_rows_clickhouse_refused_empty_payloads_and_strangers_are_not_replayable():
    rejected = rejected_row_message(line=b'{"uuid": "x", "team_id": 1}', error="Cannot parse", location="sink", at=AT)
    cases = {
        "capture message": (letter(CAPTURE.encode()), True),
        "invalid json payload": (letter(b"{oops", reason="invalid_json"), True),
        "clickhouse row": (Message("dlq", 0, 1, None, rejected, 0), False),
        "empty payload": (letter(b"", reason="empty_message"), False),
        "no payload": (letter(None, reason="empty_message"), False),
        "not a dead letter": (Message("dlq", 0, 2, None, b"hello", 0), False),
    }
    for name, (message, expected) in cases.items():
        assert dlq.replayable(dlq.parse_entry(message)) is expected, name
    assert dlq.parse_entry(Message("dlq", 0, 1, None, rejected, 0)).kafka_partition == NO_SOURCE.partition


def test_chunks_cover_everything_in_order():
    entries = [dlq.DeadLetterEntry(0, i, "r", "", None) for i in range(7)]
    chunks = list(dlq.chunked(entries, 3))
    assert [len(c) for c in chunks] == [3, 3, 1]
    assert [e for c in chunks for e in c] == entries
    assert list(dlq.chunked([], 3)) == []


def test_positions_are_sorted_so_concurrent_claims_lock_in_one_order():
    entries = [dlq.DeadLetterEntry(p, o, "r", "", None) for p, o in [(1, 5), (0, 9), (1, 2), (0, 3)]]
    assert dlq._positions(entries) == ([0, 0, 1, 1], [3, 9, 2, 5])


def test_summary_counts_by_reason():
    lines = [{"reason": "b"}, {"reason": "a"}, {"reason": "b"}]
    assert dlq.list_summary(lines) == {"listed": 3, "by_reason": {"a": 1, "b": 2}}
    assert dlq.list_summary([]) == {"listed": 0, "by_reason": {}}
