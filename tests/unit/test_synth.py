import datetime as dt
import ipaddress
import itertools
import json
import uuid
from collections import Counter

import pytest

from plugin_server.ops.synth import (
    GARBAGE_KINDS,
    MAX_DELAY_MS,
    MAX_SKEW_MS,
    SITE_URL,
    SPAN,
    Mix,
    SynthMessage,
    garbage,
    generate,
)

NOW = dt.datetime(2023, 6, 1, 12, 0, tzinfo=dt.UTC)
TOKEN = "phc_synth_test"
ENVELOPE_KEYS = {"uuid", "distinct_id", "ip", "site_url", "data", "now", "sent_at", "token"}
SPECIAL_EVENTS = {"$identify", "$create_alias", "$set", "$groupidentify"}


def messages(**kwargs) -> list[SynthMessage]:
    args = {"token": TOKEN, "events": 2000, "seed": 1, "now": NOW} | kwargs
    return list(generate(**args))


def parsed(**kwargs) -> list[tuple[SynthMessage, dict, dict]]:
    """(message, envelope, data) for each generated message."""
    out = []
    for message in messages(**kwargs):
        envelope = json.loads(message.value)
        out.append((message, envelope, json.loads(envelope["data"])))
    return out


def iso(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def test_same_seed_gives_same_bytes_and_different_seed_differs():
    first = [(m.key, m.value) for m in messages(seed=7)]
    assert first == [(m.key, m.value) for m in messages(seed=7)]
    assert first != [(m.key, m.value) for m in messages(seed=8)]


@pytest.mark.parametrize("events", [0, 1, 137])
def test_count(events):
    assert len(messages(events=events)) == events


def test_keys_and_envelope_shape():
    for message, envelope, data in parsed():
        assert ENVELOPE_KEYS - {"sent_at"} <= envelope.keys() <= ENVELOPE_KEYS
        assert message.key == f"{TOKEN}:{envelope['distinct_id']}".encode()
        assert message.uuid == envelope["uuid"]
        assert message.event == data["event"]
        assert envelope["token"] == TOKEN
        assert envelope["site_url"] == SITE_URL
        ipaddress.IPv4Address(envelope["ip"])
        assert isinstance(envelope["data"], str)
        assert data["distinct_id"] == data["properties"]["distinct_id"] == envelope["distinct_id"]
        assert envelope["distinct_id"]
        props = data["properties"]
        assert props["$lib"] == "web"
        assert props["$current_url"] == f"https://{props['$host']}{props['$pathname']}"
        for name in ("$browser", "$os", "$device_type", "$lib_version", "$session_id", "$window_id"):
            assert props[name]


def test_uuids_are_valid_v4_and_unique():
    uuids = [m.uuid for m in messages()]
    assert len(set(uuids)) == len(uuids)
    for value in uuids:
        assert str(uuid.UUID(value)) == value
        assert uuid.UUID(value).version == 4


def test_default_mix_produces_every_special_event():
    counts = Counter(m.event for m in messages(events=5000))
    assert SPECIAL_EVENTS <= counts.keys()
    assert counts["$pageview"] > len(counts) and counts["$pageview"] > 5000 // 2
    assert any(not name.startswith("$") for name in counts)


def test_mix_restricts_the_events():
    only_groups = Mix(pageview=0, custom=0, identify=0, alias=0, set=0, groupidentify=1)
    for _, _, data in parsed(events=50, mix=only_groups):
        assert data["event"] == "$groupidentify"
        props = data["properties"]
        assert props["$group_type"] == "company"
        assert props["$group_key"] == props["$groups"]["company"]
        assert set(props["$group_set"]) == {"name", "employees"}


def test_identify_uses_an_anonymous_id_seen_earlier_for_the_same_person():
    seen: set[str] = set()
    anon_to_user: dict[str, str] = {}
    identifies = 0
    for _, envelope, data in parsed(events=5000):
        distinct_id, props = envelope["distinct_id"], data["properties"]
        assert distinct_id not in anon_to_user, "anonymous id used after identify"
        if data["event"] == "$identify":
            identifies += 1
            anon = props["$anon_distinct_id"]
            assert anon in seen and anon != distinct_id
            assert distinct_id.startswith("user-")
            assert anon_to_user.setdefault(anon, distinct_id) == distinct_id
            assert set(data["$set"]) == {"email", "name"}
        seen.add(distinct_id)
    assert identifies > 10


def test_alias_links_the_two_ids_of_one_person():
    pairs = set()
    for _, envelope, data in parsed(events=5000):
        if data["event"] in ("$create_alias", "$identify"):
            other = data["properties"].get("alias") or data["properties"]["$anon_distinct_id"]
            pair = sorted([envelope["distinct_id"], other], key=lambda i: i.startswith("user-"))
            pairs.add(tuple(pair))
    anon_ids = Counter(anon for anon, _ in pairs)
    user_ids = Counter(user for _, user in pairs)
    assert all(user.startswith("user-") and not anon.startswith("user-") for anon, user in pairs)
    assert max(anon_ids.values()) == 1 and max(user_ids.values()) == 1


def test_set_event_carries_person_properties():
    sets = [data for _, _, data in parsed(events=3000) if data["event"] == "$set"]
    assert sets
    for data in sets:
        assert {"email", "name"} <= data["properties"]["$set"].keys()
        assert data["properties"]["$set_once"]


def test_offset_and_timestamp_are_exclusive():
    with_offset = 0
    for _, _, data in parsed():
        assert ("offset" in data) != ("timestamp" in data)
        if "offset" in data:
            with_offset += 1
            assert isinstance(data["offset"], int) and 0 < data["offset"] <= MAX_DELAY_MS
    assert 0.1 < with_offset / 2000 < 0.3


def test_sent_at_skew_is_bounded_and_constant_per_distinct_id():
    skews: dict[str, list[dt.timedelta]] = {}
    styles = Counter()
    for _, envelope, data in parsed(events=5000, persons=1000):
        sent_at = envelope.get("sent_at")
        styles["absent" if sent_at is None else "iso" if sent_at else "empty"] += 1
        if not sent_at:
            continue
        now, client = iso(envelope["now"]), iso(sent_at)
        assert now.tzinfo is not None and client.tzinfo is not None
        skews.setdefault(envelope["distinct_id"], []).append(client - now)
        assert abs(client - now) <= dt.timedelta(milliseconds=MAX_SKEW_MS)
        if "timestamp" in data:
            delay = client - iso(data["timestamp"])
            assert dt.timedelta(0) < delay <= dt.timedelta(milliseconds=MAX_DELAY_MS)
    assert all(max(s) - min(s) < dt.timedelta(milliseconds=1) for s in skews.values())
    assert styles["iso"] > 0.8 * 5000 and styles["absent"] and styles["empty"]


def test_resolved_event_times_increase_within_the_last_hour():
    """Resolve timestamps as the plugin-server does (REFERENCE 2.2); they follow the stream order."""
    resolved = []
    for _, envelope, data in parsed():
        now = iso(envelope["now"])
        assert NOW - SPAN - dt.timedelta(milliseconds=MAX_DELAY_MS) <= now <= NOW
        if "offset" in data:
            resolved.append(now - dt.timedelta(milliseconds=data["offset"]))
        elif envelope.get("sent_at"):
            resolved.append(now + (iso(data["timestamp"]) - iso(envelope["sent_at"])))
    assert len(resolved) > 1500
    assert all(a < b for a, b in itertools.pairwise(resolved))


def test_activity_is_skewed_towards_some_persons():
    counts = Counter(m.key for m in messages(events=5000, persons=100))
    ranked = sorted(counts.values(), reverse=True)
    assert ranked[0] > 10 * ranked[len(ranked) // 2]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"events": -1}, "events"),
        ({"events": 1.5}, "events"),
        ({"persons": 0}, "persons"),
        ({"token": ""}, "token"),
        ({"now": dt.datetime(2023, 6, 1, 12)}, "timezone-aware"),
    ],
)
def test_argument_validation(kwargs, message):
    args = {"token": TOKEN, "events": 1, "now": NOW} | kwargs
    with pytest.raises(ValueError, match=message):
        generate(**args)  # raises before iteration


@pytest.mark.parametrize("weights", [{"pageview": -1}, {"custom": float("nan")}, "all zero"])
def test_mix_validation(weights):
    if weights == "all zero":
        weights = dict.fromkeys(["pageview", "custom", "identify", "alias", "set", "groupidentify"], 0)
    with pytest.raises(ValueError, match="Mix weights"):
        Mix(**weights)


def garbage_kind(value: bytes) -> str | None:
    """The first reason a message value is not a valid capture envelope, or None."""
    try:
        envelope = json.loads(value)
    except ValueError:
        return "not_json"
    if not isinstance(envelope, dict):
        return "not_object"
    if not isinstance(envelope.get("data"), str):
        return "data_not_string"
    try:
        data = json.loads(envelope["data"])
    except RecursionError:
        return "deeply_nested"
    except ValueError:
        return "data_invalid_json"
    if not isinstance(data, dict) or "event" not in data:
        return "data_not_event"
    if not envelope.get("token"):
        return "missing_token"
    try:
        uuid.UUID(envelope["uuid"])
    except ValueError:
        return "bad_uuid"
    if not envelope["distinct_id"]:
        return "empty_distinct_id"
    return None


def test_generated_messages_are_valid_envelopes():
    assert {garbage_kind(m.value) for m in messages(events=200)} == {None}


def test_garbage_cycles_through_each_kind():
    values = list(garbage(count=2 * len(GARBAGE_KINDS), seed=3))
    assert [garbage_kind(v) for v in values] == list(GARBAGE_KINDS) * 2
    assert values == list(garbage(count=2 * len(GARBAGE_KINDS), seed=3))
    assert values != list(garbage(count=2 * len(GARBAGE_KINDS), seed=4))


def test_garbage_validates_count():
    assert list(garbage(count=0)) == []
    with pytest.raises(ValueError, match="count"):
        garbage(count=-1)
