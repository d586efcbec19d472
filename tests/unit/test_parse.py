import datetime as dt
import json

import pytest

from plugin_server.ingestion.event import PipelineEvent, Source
from plugin_server.ingestion.parse import (
    MAX_DISTINCT_ID_LENGTH,
    Reason,
    normalize_distinct_id,
    parse_message,
    sanitize_event_name,
)
from plugin_server.ingestion.results import DeadLetter, Ok
from plugin_server.ops import synth

SOURCE = Source("events_plugin_ingestion", 3, 42, 1_600_000_000_000)
UUID = "017f3a4e-4f3c-7d7e-9c6b-3a2b1c0d9e8f"
ALL_REASONS = {v for k, v in vars(Reason).items() if k.isupper()}


def envelope(*, data: dict | object = None, drop: tuple[str, ...] = (), **fields) -> bytes:
    """A capture envelope; `data` is JSON-encoded into the `data` string unless it is given raw."""
    body = {
        "uuid": UUID,
        "distinct_id": "user-1",
        "ip": "10.0.0.1",
        "site_url": "http://localhost:8000",
        "now": "2020-01-01T12:00:05.200Z",
        "sent_at": "2020-01-01T12:00:05.000Z",
        "token": "phc_token",
        "data": json.dumps({"event": "$pageview", "properties": {"a": 1}} if data is None else data),
    }
    body.update(fields)
    for key in drop:
        del body[key]
    return json.dumps(body).encode()


def parsed(value: bytes | None) -> PipelineEvent:
    result = parse_message(value, SOURCE)
    assert isinstance(result, Ok), result
    return result.value


# --- valid envelopes --------------------------------------------------------------------------


def test_valid_envelope_parses_every_field():
    value = envelope(
        data={"event": "signed_up", "properties": {"plan": "free"}, "timestamp": "2020-01-01T12:00:00Z", "offset": 5}
    )
    event = parsed(value)
    assert event == PipelineEvent(
        source=SOURCE,
        raw=value,
        uuid=UUID,
        distinct_id="user-1",
        event="signed_up",
        properties={"plan": "free"},
        now="2020-01-01T12:00:05.200Z",
        ip="10.0.0.1",
        site_url="http://localhost:8000",
        token="phc_token",
        team_id=None,
        sent_at="2020-01-01T12:00:05.000Z",
        timestamp="2020-01-01T12:00:00Z",
        offset=5,
        elements_chain="",
    )
    assert event.grouping_key == "phc_token:user-1"


def test_envelope_fields_win_over_data_fields():
    data = {
        "event": "from_data",
        "uuid": "00000000-0000-4000-8000-000000000000",
        "distinct_id": "data-id",
        "token": "data-token",
        "ip": "1.1.1.1",
        "now": "1999-01-01T00:00:00Z",
        "sent_at": "1999-01-01T00:00:00Z",
        "properties": {"from": "data"},
        "timestamp": "2020-01-01T11:00:00Z",
    }
    event = parsed(envelope(data=data, event="from_envelope", timestamp="2020-01-01T10:00:00Z"))
    assert (event.uuid, event.distinct_id, event.token, event.ip) == (UUID, "user-1", "phc_token", "10.0.0.1")
    assert (event.now, event.sent_at) == ("2020-01-01T12:00:05.200Z", "2020-01-01T12:00:05.000Z")
    assert (event.event, event.timestamp) == ("from_envelope", "2020-01-01T10:00:00Z")
    assert event.properties == {"from": "data"}  # only in data: taken from data


def test_data_fields_fill_in_what_the_envelope_lacks():
    data = {"event": "e", "uuid": UUID, "distinct_id": 7, "token": "t2", "properties": {}}
    event = parsed(envelope(data=data, drop=("uuid", "distinct_id", "token")))
    assert (event.uuid, event.distinct_id, event.token) == (UUID, "7", "t2")


def test_missing_data_is_an_empty_object():
    event = parsed(envelope(event="e", drop=("data",)))
    assert (event.event, event.properties) == ("e", {})


@pytest.mark.parametrize(
    ("properties", "top", "expected"),
    [
        ({"x": 1}, {"$set": {"a": 1}}, {"x": 1, "$set": {"a": 1}}),
        ({"$set": {"a": 1, "b": 1}}, {"$set": {"b": 2, "c": 2}}, {"$set": {"a": 1, "b": 2, "c": 2}}),
        ({"$set_once": {"a": 1}}, {"$set_once": {"a": 2}}, {"$set_once": {"a": 2}}),
        (
            {"$set": {"a": 1}, "$set_once": {"f": 1}},
            {"$set": {"a": 9}, "$set_once": {"g": 2}},
            {"$set": {"a": 9}, "$set_once": {"f": 1, "g": 2}},
        ),
        ({"$set": {"a": 1}}, {}, {"$set": {"a": 1}}),
        ({"$set": {"a": 1}}, {"$set": None}, {"$set": {"a": 1}}),
        ({"$set": None}, {"$set": {"a": 1}}, {"$set": {"a": 1}}),
    ],
    ids=["top-only", "top-wins", "set-once-top-wins", "both", "no-top", "top-null", "inner-null"],
)
def test_top_level_set_and_set_once_merge_into_properties(properties, top, expected):
    event = parsed(envelope(data={"event": "e", "properties": properties, **top}))
    assert event.properties == expected


def test_envelope_top_level_set_wins_over_data_top_level_set():
    event = parsed(envelope(data={"event": "e", "$set": {"a": "data"}}, **{"$set": {"a": "envelope"}}))
    assert event.properties == {"$set": {"a": "envelope"}}


@pytest.mark.parametrize(
    ("fields", "attribute", "value"),
    [
        ({"ip": ""}, "ip", None),
        ({"ip": None}, "ip", None),
        ({"site_url": ""}, "site_url", None),
        ({"sent_at": ""}, "sent_at", None),
        ({"sent_at": None}, "sent_at", None),
        ({"now": 12}, "now", ""),
        ({"token": "a\x00b"}, "token", "a\ufffdb"),
        ({"token": 123, "team_id": 5}, "token", None),
        ({"team_id": 5}, "team_id", 5),
        ({"uuid": UUID.upper()}, "uuid", UUID),
        ({"uuid": "{" + UUID + "}"}, "uuid", UUID),
        ({"uuid": "urn:uuid:" + UUID.replace("-", "")}, "uuid", UUID),
        ({"distinct_id": 42}, "distinct_id", "42"),
        ({"distinct_id": "  padded\x00 "}, "distinct_id", "padded"),
        ({"event": 123}, "event", "123"),
        ({"event": {"a": 1}}, "event", '{"a":1}'),
        ({"event": False}, "event", "false"),
        ({"event": 0}, "event", "0"),
    ],
    ids=[
        "empty-ip", "null-ip", "empty-site-url", "empty-sent-at", "null-sent-at", "now-not-string",
        "nul-in-token", "token-not-string-with-team-id", "team-id", "uuid-canonical", "uuid-braced", "uuid-urn", "numeric-distinct-id",
        "distinct-id-trimmed", "numeric-event", "object-event", "false-event", "zero-event",
    ],
)  # fmt: skip
def test_field_normalization(fields, attribute, value):
    assert getattr(parsed(envelope(**fields)), attribute) == value


def test_team_id_makes_the_grouping_key():
    assert parsed(envelope(team_id=9)).grouping_key == "9:user-1"


@pytest.mark.parametrize(
    ("fields", "data", "chain", "properties"),
    [
        ({}, {"event": "e", "properties": {"$elements_chain": "a:b", "k": 1}}, "a:b", {"k": 1}),
        ({"elements_chain": "top"}, {"event": "e", "properties": {"k": 1}}, "top", {"k": 1}),
        ({}, {"event": "e", "properties": {"$elements_chain": 5}}, "", {}),
        ({}, {"event": "e"}, "", {}),
    ],
    ids=["from-properties", "top-level", "not-a-string", "none"],
)
def test_elements_chain(fields, data, chain, properties):
    event = parsed(envelope(data=data, **fields))
    assert (event.elements_chain, event.properties) == (chain, properties)


# --- dead letters -----------------------------------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000

BAD_INPUTS = [
    ("none", None, Reason.EMPTY),
    ("empty-bytes", b"", Reason.EMPTY),
    ("truncated", envelope()[:-3], Reason.NOT_JSON),
    ("not-utf8", b'{"uuid": "\xff\xfe"}', Reason.NOT_JSON),
    ("plain-text", b"hello", Reason.NOT_JSON),
    ("deeply-nested", DEEP.encode(), Reason.NOT_JSON),
    ("array", b"[1, 2]", Reason.NOT_OBJECT),
    ("number", b"42", Reason.NOT_OBJECT),
    ("null", b"null", Reason.NOT_OBJECT),
    ("string", b'"text"', Reason.NOT_OBJECT),
    ("data-object", envelope(data={}).replace(b'"data": "{}"', b'"data": {}'), Reason.BAD_DATA),
    ("data-number", envelope(data=1).replace(b'"data": "1"', b'"data": 1'), Reason.BAD_DATA),
    ("data-truncated", json.dumps({"token": "t", "data": '{"event": '}).encode(), Reason.BAD_DATA),
    ("data-array", envelope(data=[1]), Reason.BAD_DATA),
    ("data-string", envelope(data="x"), Reason.BAD_DATA),
    ("data-deeply-nested", json.dumps({"token": "t", "data": DEEP}).encode(), Reason.BAD_DATA),
    ("team-id-zero", envelope(team_id=0), Reason.BAD_TEAM_ID),
    ("team-id-negative", envelope(team_id=-3), Reason.BAD_TEAM_ID),
    ("team-id-string", envelope(team_id="1"), Reason.BAD_TEAM_ID),
    ("team-id-bool", envelope(team_id=True), Reason.BAD_TEAM_ID),
    ("team-id-float", envelope(team_id=1.0), Reason.BAD_TEAM_ID),
    ("team-id-bad-without-token", envelope(team_id="x", drop=("token",)), Reason.BAD_TEAM_ID),
    ("no-token", envelope(drop=("token",)), Reason.NO_TOKEN),
    ("empty-token", envelope(token=""), Reason.NO_TOKEN),
    ("null-token", envelope(token=None), Reason.NO_TOKEN),
    ("number-token", envelope(token=12), Reason.NO_TOKEN),
    ("no-uuid", envelope(drop=("uuid",)), Reason.BAD_UUID),
    ("empty-uuid", envelope(uuid=""), Reason.BAD_UUID),
    ("bad-uuid", envelope(uuid="not-a-uuid"), Reason.BAD_UUID),
    ("short-uuid", envelope(uuid=UUID[:-4]), Reason.BAD_UUID),
    ("number-uuid", envelope(uuid=123), Reason.BAD_UUID),
    ("no-distinct-id", envelope(drop=("distinct_id",)), Reason.NO_DISTINCT_ID),
    ("empty-distinct-id", envelope(distinct_id=""), Reason.NO_DISTINCT_ID),
    ("blank-distinct-id", envelope(distinct_id=" \t "), Reason.NO_DISTINCT_ID),
    ("nul-distinct-id", envelope(distinct_id="\x00"), Reason.NO_DISTINCT_ID),
    ("object-distinct-id", envelope(distinct_id={"a": 1}), Reason.NO_DISTINCT_ID),
    ("list-distinct-id", envelope(distinct_id=["a"]), Reason.NO_DISTINCT_ID),
    ("bool-distinct-id", envelope(distinct_id=True), Reason.NO_DISTINCT_ID),
    ("long-distinct-id", envelope(distinct_id="x" * 201), Reason.NO_DISTINCT_ID),
    ("no-event", envelope(data={"properties": {}}), Reason.NO_EVENT),
    ("empty-event", envelope(data={"event": ""}), Reason.NO_EVENT),
    ("null-event", envelope(data={"event": None}), Reason.NO_EVENT),
    ("properties-list", envelope(data={"event": "e", "properties": [1]}), Reason.BAD_PROPERTIES),
    ("properties-string", envelope(data={"event": "e", "properties": "{}"}), Reason.BAD_PROPERTIES),
    ("top-set-list", envelope(data={"event": "e", "$set": [1]}), Reason.BAD_PROPERTIES),
    ("top-set-once-string", envelope(data={"event": "e", "$set_once": "x"}), Reason.BAD_PROPERTIES),
    (
        "inner-set-not-object",
        envelope(data={"event": "e", "properties": {"$set": "x"}, "$set": {"a": 1}}),
        Reason.BAD_PROPERTIES,
    ),
    ("properties-too-large", envelope(data={"event": "e", "properties": {"blob": "x" * 1_000_000}}), Reason.TOO_LARGE),
]


@pytest.mark.parametrize(("value", "reason"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_dead_lettered_with_its_reason(value, reason):
    result = parse_message(value, SOURCE)
    assert isinstance(result, DeadLetter)
    assert result.reason == reason
    assert result.detail and "\n" not in result.detail


def test_bad_inputs_reach_every_reason():
    assert {reason for _, _, reason in BAD_INPUTS} == ALL_REASONS


def test_bad_uuid_detail_names_the_uuid():
    result = parse_message(envelope(uuid="nope"), SOURCE)
    assert result == DeadLetter(Reason.BAD_UUID, 'Not a valid UUID: "nope"')


@pytest.mark.parametrize("constant", [float("nan"), float("inf"), float("-inf")], ids=["NaN", "Infinity", "-Infinity"])
def test_non_standard_json_constants_are_not_json(constant):
    value = envelope(data={"event": "e", "properties": {"x": constant}})  # json.dumps writes NaN/Infinity
    assert b"NaN" in value or b"Infinity" in value
    result = parse_message(value, SOURCE)
    assert isinstance(result, DeadLetter) and result.reason == Reason.BAD_DATA


# --- sanitize_event_name and normalize_distinct_id --------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("$pageview", "$pageview"),
        (123, "123"),
        (1.5, "1.5"),
        (True, "true"),
        (None, "null"),
        ({"a": 1}, '{"a":1}'),
        ([1, "x"], '[1,"x"]'),
        ({"é": "ü"}, '{"é":"ü"}'),
        ({1, 2}, "{1, 2}"),
        ("x" * 300, "x" * 200),
        ("é" * 201, "é" * 200),
        ("  spaced  ", "  spaced  "),
        ({"k": "v" * 300}, ('{"k":"' + "v" * 300)[:200]),
    ],
    ids=["string", "int", "float", "bool", "none", "dict", "list", "unicode-dict", "not-json-able",
         "300-chars", "201-unicode", "whitespace-kept", "long-dict"],
)  # fmt: skip
def test_sanitize_event_name(name, expected):
    assert sanitize_event_name(name) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("user", "user"),
        (123, "123"),
        (-5, "-5"),
        (0, "0"),
        (1.5, "1.5"),
        ({"a": 1}, None),
        ([1], None),
        ({}, None),
        ([], None),
        (True, None),
        (False, None),
        (None, None),
        ("", None),
        ("   ", None),
        ("\t user \n", "user"),
        ("us\x00er", "user"),
        ("\x00\x00", None),
        (" \x00 ", None),
        ("x" * 200, "x" * 200),
        ("x" * 201, None),
        ("é" * 200, "é" * 200),
        ("  " + "x" * 200 + "  ", "x" * 200),
        (10**200, None),
        (10**199, "1" + "0" * 199),
    ],
    ids=[
        "string", "int", "negative", "zero", "float", "dict", "list", "empty-dict", "empty-list", "true",
        "false", "none", "empty", "blank", "trimmed", "nul-removed", "only-nul", "nul-and-spaces", "200",
        "201", "200-unicode", "200-after-trim", "201-digit-int", "200-digit-int",
    ],
)  # fmt: skip
def test_normalize_distinct_id(value, expected):
    assert normalize_distinct_id(value) == expected


def test_max_distinct_id_length_is_200():
    assert MAX_DISTINCT_ID_LENGTH == 200


# --- synth ------------------------------------------------------------------------------------

GARBAGE_REASONS = {
    "not_json": Reason.NOT_JSON,
    "not_object": Reason.NOT_OBJECT,
    "data_not_string": Reason.BAD_DATA,
    "data_invalid_json": Reason.BAD_DATA,
    "missing_token": Reason.NO_TOKEN,
    "bad_uuid": Reason.BAD_UUID,
    "empty_distinct_id": Reason.NO_DISTINCT_ID,
    "deeply_nested": Reason.BAD_DATA,
}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_garbage_value_is_dead_lettered(seed):
    count = len(synth.GARBAGE_KINDS) * 2
    values = list(synth.garbage(count=count, seed=seed))
    assert len(values) == count
    reasons = []
    for value in values:
        result = parse_message(value, SOURCE)
        assert isinstance(result, DeadLetter), value[:200]
        reasons.append(result.reason)
    assert reasons == [GARBAGE_REASONS[kind] for kind in synth.GARBAGE_KINDS] * 2


def test_every_generated_message_parses():
    now = dt.datetime(2023, 6, 1, 12, tzinfo=dt.UTC)
    messages = list(synth.generate(token="phc_synth", events=1000, persons=50, seed=5, now=now))
    for message in messages:
        event = parsed(message.value)
        assert (event.uuid, event.event, event.token, event.team_id) == (message.uuid, message.event, "phc_synth", None)
        assert message.key == f"{event.token}:{event.distinct_id}".encode()
        assert event.raw == message.value
        assert (event.timestamp is None) != (event.offset is None)
    assert {m.event for m in messages} >= {"$pageview", "$identify", "$set"}


def test_large_messages_under_the_properties_limit_pass():
    # the envelope is large (a big $set outside properties counts), the properties are not
    result = parse_message(envelope(data={"event": "e", "properties": {"a": 1}, "junk": "x" * 1_000_000}), SOURCE)
    assert isinstance(result, Ok)


def test_nul_is_removed_from_properties_and_elements_chain_is_extracted():
    value = envelope(data={"event": "e", "properties": {"a\x00": "x\x00y", "$elements_chain": "a:nth-child=1"}})
    result = parse_message(value, SOURCE)
    assert result.value.properties == {"a": "xy"} and result.value.elements_chain == "a:nth-child=1"


def test_the_fast_constructor_builds_what_the_dataclass_builds():
    from plugin_server.ingestion.event import PipelineEvent

    fields = {"source": SOURCE, "raw": b"{}", "uuid": UUID, "distinct_id": "d", "event": "e", "properties": {"a": 1},
              "now": "", "token": "t"}  # fmt: skip
    assert PipelineEvent.parsed(**fields) == PipelineEvent(**fields)
    with pytest.raises(TypeError, match=r"missing \['distinct_id'"):
        PipelineEvent.parsed(**{k: v for k, v in fields.items() if k != "distinct_id"})
    with pytest.raises(TypeError, match=r"unknown \['bogus'\]"):
        PipelineEvent.parsed(**fields, bogus=1)
