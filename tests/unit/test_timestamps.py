import datetime as dt

import pytest

from plugin_server.ingestion.event import IngestionWarning
from plugin_server.ingestion.timestamps import (
    FUTURE_LIMIT,
    iso,
    parse_date,
    resolve_timestamp,
)

UTC = dt.UTC
NOW_TEXT = "2020-01-01T12:00:05.200Z"
NOW = dt.datetime(2020, 1, 1, 12, 0, 5, 200_000, tzinfo=UTC)
# The wall clock is deliberately far from `now`, so a fallback to it is visible.
WALLCLOCK = dt.datetime(2021, 6, 1, 8, 30, tzinfo=UTC)
EVENT_UUID = "017f3a4e-4f3c-7d7e-9c6b-3a2b1c0d9e8f"
FUTURE_KEYS = {"timestamp", "sentAt", "offset", "now", "result", "eventUuid", "eventName"}


def resolve(timestamp=None, sent_at=None, offset=None, *, now=NOW_TEXT, properties=None, wallclock=WALLCLOCK):
    return resolve_timestamp(
        timestamp=timestamp,
        sent_at=sent_at,
        offset=offset,
        now=now,
        properties=properties or {},
        wallclock=wallclock,
        event_uuid=EVENT_UUID,
        event_name="$pageview",
    )


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


# --- REFERENCE.md 2.2, the example table ------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "sent_at", "offset", "result", "warning"),
    [
        ("2020-01-01T12:00:00.000Z", "2020-01-01T12:00:05.000Z", None, at("2020-01-01T12:00:00.200+00:00"), None),
        ("2020-01-01T12:00:00.000Z", None, None, at("2020-01-01T12:00:00.000+00:00"), None),
        (None, None, 6000, at("2020-01-01T11:59:59.200+00:00"), None),
        ("2020-01-01T12:00:00.000Z", "2020-01-01T12:00:05.000Z", 6000, at("2020-01-01T11:59:59.200+00:00"), None),
        ("2021-10-29T01:44:00.000+02:00", "2021-10-29T01:44:00.000+02:00", None, NOW, None),
        ("notISO", None, None, WALLCLOCK, "ignored_invalid_timestamp"),
        ("2025-01-01T00:00:00Z", None, None, NOW, "event_timestamp_in_future"),
        (None, None, None, NOW, None),
    ],
    ids=[
        "skew-corrected", "timestamp-only", "offset-only", "offset-wins-over-timestamp", "zero-skew",
        "invalid-timestamp", "years-ahead", "nothing",
    ],
)  # fmt: skip
def test_reference_examples(timestamp, sent_at, offset, result, warning):
    resolved, warnings = resolve(timestamp, sent_at, offset)
    assert resolved == result
    assert resolved.tzinfo is not None and resolved.utcoffset() == dt.timedelta(0)
    assert [w.type for w in warnings] == ([warning] if warning else [])


# --- sent_at ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ignore", "result"),
    [
        (True, at("2020-01-01T12:00:00+00:00")),
        ("yes", at("2020-01-01T12:00:00+00:00")),
        (False, at("2020-01-01T12:00:10.200+00:00")),
        (None, at("2020-01-01T12:00:10.200+00:00")),
    ],
    ids=["true", "truthy-string", "false", "null"],
)
def test_ignore_sent_at(ignore, result):
    # sent_at 10 s before the event time: a skew of -10 s unless sent_at is ignored
    resolved, warnings = resolve("2020-01-01T12:00:00Z", "2020-01-01T11:59:55Z", properties={"$ignore_sent_at": ignore})
    assert (resolved, warnings) == (result, ())


def test_ignored_sent_at_is_not_even_validated():
    resolved, warnings = resolve("2020-01-01T12:00:00Z", "garbage", properties={"$ignore_sent_at": True})
    assert (resolved, warnings) == (at("2020-01-01T12:00:00+00:00"), ())


@pytest.mark.parametrize(
    ("sent_at", "shown"),
    [
        ("garbage", "garbage"),
        (12345, "12345"),
        ({"a": 1}, '{"a": 1}'),
        ("2020-13-45T99:00:00Z", "2020-13-45T99:00:00Z"),
    ],
    ids=["word", "number", "object", "impossible-date"],
)
def test_invalid_sent_at_warns_and_is_treated_as_absent(sent_at, shown):
    resolved, warnings = resolve("2020-01-01T12:00:00Z", sent_at)
    assert resolved == at("2020-01-01T12:00:00+00:00")  # timestamp taken as is
    assert warnings == (
        IngestionWarning(
            "ignored_invalid_timestamp",
            {"eventUuid": EVENT_UUID, "field": "sent_at", "value": shown, "reason": "unparsable"},
        ),
    )


@pytest.mark.parametrize("sent_at", ["", None, 0], ids=["empty", "null", "zero"])
def test_falsy_sent_at_is_absent_without_warning(sent_at):
    assert resolve("2020-01-01T12:00:00Z", sent_at) == (at("2020-01-01T12:00:00+00:00"), ())


# --- future clamp -----------------------------------------------------------------------------


def test_future_clamp_warning_details():
    resolved, warnings = resolve("2025-01-01T00:00:00Z")
    assert resolved == NOW
    assert len(warnings) == 1 and warnings[0].type == "event_timestamp_in_future"
    details = warnings[0].details
    assert set(details) == FUTURE_KEYS
    assert details == {
        "timestamp": "2025-01-01T00:00:00Z",
        "sentAt": "",
        "offset": "",
        "now": NOW_TEXT,
        "result": "2025-01-01T00:00:00.000Z",
        "eventUuid": EVENT_UUID,
        "eventName": "$pageview",
    }


def test_future_clamp_by_negative_offset_shows_the_offset():
    offset = -(FUTURE_LIMIT + dt.timedelta(hours=1)) // dt.timedelta(milliseconds=1)
    resolved, warnings = resolve(None, "2020-01-01T12:00:05Z", offset)
    assert resolved == NOW
    (warning,) = warnings
    assert set(warning.details) == FUTURE_KEYS
    assert warning.details["offset"] == str(offset)
    assert warning.details["sentAt"] == "2020-01-01T12:00:05Z"
    assert warning.details["timestamp"] == ""
    assert warning.details["result"] == iso(NOW + FUTURE_LIMIT + dt.timedelta(hours=1))


@pytest.mark.parametrize(
    ("ahead", "clamped"),
    [(FUTURE_LIMIT, False), (FUTURE_LIMIT + dt.timedelta(milliseconds=1), True), (dt.timedelta(hours=-48), False)],
    ids=["exactly-23h", "23h-and-1ms", "two-days-ago"],
)
def test_future_limit_boundary(ahead, clamped):
    resolved, warnings = resolve(iso(NOW + ahead))
    assert resolved == (NOW if clamped else NOW + ahead)
    assert [w.type for w in warnings] == (["event_timestamp_in_future"] if clamped else [])


def test_future_limit_is_23_hours():
    assert FUTURE_LIMIT == dt.timedelta(hours=23)


# --- invalid timestamps fall back to the wall clock -------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "sent_at", "shown"),
    [
        ("notISO", None, "notISO"),
        ("notISO", "2020-01-01T12:00:05Z", "notISO"),
        (12345, None, "12345"),
        (["2020-01-01"], None, '["2020-01-01"]'),
        ("2020-02-30T00:00:00Z", None, "2020-02-30T00:00:00Z"),
    ],
    ids=["word", "word-with-sent-at", "number", "list", "impossible-date"],
)
def test_invalid_timestamp_falls_back_to_wallclock(timestamp, sent_at, shown):
    resolved, warnings = resolve(timestamp, sent_at, 6000)  # offset not consulted: ts is the result
    assert resolved == WALLCLOCK
    assert warnings == (
        IngestionWarning(
            "ignored_invalid_timestamp",
            {"eventUuid": EVENT_UUID, "field": "timestamp", "value": shown, "reason": "unparsable"},
        ),
    )


@pytest.mark.parametrize("now", ["", "garbage", None], ids=["empty", "word", "null"])
def test_missing_or_invalid_now_uses_wallclock(now):
    assert resolve(now=now) == (WALLCLOCK, ())
    assert resolve(None, None, 1000, now=now) == (WALLCLOCK - dt.timedelta(seconds=1), ())


# --- offset -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "result"),
    [
        (6000, at("2020-01-01T11:59:59.200+00:00")),
        ("6000", at("2020-01-01T11:59:59.200+00:00")),
        (" 6000 ", at("2020-01-01T11:59:59.200+00:00")),
        ("6e3", at("2020-01-01T11:59:59.200+00:00")),
        (6000.5, NOW - dt.timedelta(milliseconds=6000.5)),
        (-1000, at("2020-01-01T12:00:06.200+00:00")),
        (0, NOW),
        ("0", NOW),
        (True, NOW),
        (False, NOW),
        ("abc", NOW),
        ("", NOW),
        ([6000], NOW),
        ({"ms": 6000}, NOW),
    ],
    ids=[
        "int", "numeric-string", "padded-string", "exponent-string", "float", "negative", "zero", "zero-string",
        "true-ignored", "false-ignored", "word-ignored", "empty-ignored", "list-ignored", "object-ignored",
    ],
)  # fmt: skip
def test_offset(offset, result):
    assert resolve(None, None, offset) == (result, ())


def test_offset_is_not_used_when_timestamp_has_no_sent_at():
    assert resolve("2020-01-01T10:00:00Z", None, 6000) == (at("2020-01-01T10:00:00+00:00"), ())


# --- date parsing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-01-01T10:00:00Z", at("2020-01-01T10:00:00+00:00")),
        ("2020-01-01T10:00:00z", at("2020-01-01T10:00:00+00:00")),
        ("2020-01-01T10:00:00.123Z", at("2020-01-01T10:00:00.123+00:00")),
        ("2020-01-01T12:00:00+02:00", at("2020-01-01T10:00:00+00:00")),
        ("2020-01-01T10:00:00", at("2020-01-01T10:00:00+00:00")),
        ("2020-01-01 10:00:00", at("2020-01-01T10:00:00+00:00")),
        ("2020-01-01", at("2020-01-01T00:00:00+00:00")),
        ("  2020-01-01T10:00:00Z  ", at("2020-01-01T10:00:00+00:00")),
        ("Wed, 01 Jan 2020 10:00:00 GMT", at("2020-01-01T10:00:00+00:00")),
        ("Wed, 01 Jan 2020 12:00:00 +0200", at("2020-01-01T10:00:00+00:00")),
        ("01 Jan 2020 10:00:00 -0000", at("2020-01-01T10:00:00+00:00")),
        ("Wed, 01 Jan 2020 10:00:00", at("2020-01-01T10:00:00+00:00")),
        ("notISO", None),
        ("", None),
        ("   ", None),
        (None, None),
        (1577872800000, None),
        ("2020-13-01T00:00:00Z", None),
        ("Wed, 32 Jan 2020 10:00:00 GMT", None),
        ("0001-01-01T00:00:00+01:00", None),
        ("9999-12-31T23:59:59-01:00", None),
    ],
    ids=[
        "iso-z", "iso-lower-z", "iso-millis", "iso-offset", "iso-naive-is-utc", "iso-space", "date-only",
        "padded", "rfc2822-gmt", "rfc2822-offset", "rfc2822-no-weekday", "rfc2822-naive-is-utc", "word",
        "empty", "blank", "none", "number", "month-13", "rfc2822-day-32", "before-year-1-in-utc",
        "after-year-9999-in-utc",
    ],
)  # fmt: skip
def test_parse_date(text, expected):
    parsed = parse_date(text)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is UTC


def test_naive_timestamp_is_utc_in_resolution():
    assert resolve("2020-01-01T10:00:00")[0] == at("2020-01-01T10:00:00+00:00")


def test_rfc2822_timestamp_and_sent_at():
    resolved, warnings = resolve("Wed, 01 Jan 2020 12:00:00 +0000", "Wed, 01 Jan 2020 12:00:05 GMT")
    assert (resolved, warnings) == (at("2020-01-01T12:00:00.200+00:00"), ())


def test_iso_output():
    assert iso(dt.datetime(2020, 1, 1, 14, 0, 0, 123_456, tzinfo=dt.timezone(dt.timedelta(hours=2)))) == (
        "2020-01-01T12:00:00.123Z"
    )


# --- overflow-sized inputs never raise --------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "sent_at", "offset"),
    [
        (None, None, 1e300),
        (None, None, -1e300),
        (None, None, "1e300"),
        (None, None, "1e400"),
        (None, None, float("inf")),
        (None, None, "-inf"),
        (None, None, 10**20),
        ("9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", None),
        ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", None),
    ],
    ids=[
        "huge-offset", "huge-negative-offset", "huge-offset-string", "infinite-offset-string",
        "infinite-offset", "minus-infinite-string", "offset-past-datetime-range", "skew-past-max",
        "skew-past-min",
    ],
)  # fmt: skip
def test_overflow_falls_back_to_wallclock_with_warning(timestamp, sent_at, offset):
    resolved, warnings = resolve(timestamp, sent_at, offset)
    assert resolved == WALLCLOCK
    assert [w.type for w in warnings] == ["ignored_invalid_timestamp"]
    assert warnings[0].details["field"] == "timestamp"


def test_offset_integer_too_large_for_a_float_does_not_raise():
    resolved, warnings = resolve(None, None, 10**400)
    assert resolved == WALLCLOCK and [w.type for w in warnings] == ["ignored_invalid_timestamp"]


@pytest.mark.parametrize("offset", ["NaN", "nan", float("nan")], ids=["string-NaN", "string-nan", "float-nan"])
def test_nan_offset_does_not_raise(offset):
    resolved, _warnings = resolve(None, None, offset)
    assert resolved in (NOW, WALLCLOCK)
