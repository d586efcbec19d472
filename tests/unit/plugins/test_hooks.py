"""Pure parts of the async side: processed events, export batching (the export retry policy,
EXPORT_RETRY, is tested with the other policies in tests/unit/test_retry.py)."""

from __future__ import annotations

import json

import pytest

from plugin_server.plugins.hooks import export_batches, processed_event


def test_processed_event_from_an_events_row():
    row = {
        "uuid": "u1", "event": "$pageview", "team_id": 2, "distinct_id": "d",
        "properties": json.dumps({"$set": {"a": 1}, "$ip": "1.2.3.4", "x": "y"}),
        "timestamp": "2024-06-01 12:00:00.123456", "elements_chain": "a:nth-child=1",
        "person_id": "p1", "person_properties": json.dumps({"email": "e"}), "person_created_at": "2024-01-01 00:00:00.000",
    }  # fmt: skip
    event = processed_event(row)
    assert event == {
        "uuid": "u1", "team_id": 2, "distinct_id": "d", "event": "$pageview", "timestamp": "2024-06-01T12:00:00.123456Z",
        "properties": {"$set": {"a": 1}, "$ip": "1.2.3.4", "x": "y"}, "elements_chain": "a:nth-child=1",
        "person": {"uuid": "p1", "properties": {"email": "e"}, "created_at": "2024-01-01 00:00:00.000"},
        "$set": {"a": 1}, "$set_once": None, "ip": "1.2.3.4",
    }  # fmt: skip


@pytest.mark.parametrize("properties", ["not json", None, 5])
def test_processed_event_survives_broken_columns(properties):
    event = processed_event({"uuid": "u", "team_id": 1, "properties": properties})
    assert event["properties"] == {} and event["timestamp"] == ""


def events(*names: str) -> list[dict]:
    return [{"event": name, "properties": {"pad": "x" * 90}} for name in names]


@pytest.mark.parametrize(
    ("config", "names", "sizes"),
    [
        ({}, ["a"] * 5, [5]),
        ({"exportEventsToIgnore": " a , c"}, ["a", "b", "c", "b"], [2]),
        ({"exportEventsToIgnore": "a,b"}, ["a", "b"], []),
        ({"exportEventsBufferBytes": "260"}, ["a"] * 5, [2, 2, 1]),
        ({"exportEventsBufferBytes": "0"}, ["a"] * 3, [1, 1, 1]),  # clamped to the minimum: one event each
        ({"exportEventsBufferBytes": "lots"}, ["a"] * 3, [3]),  # unparsable: the default
    ],
)
def test_export_batches_ignore_and_split_by_bytes(config, names, sizes):
    assert [len(b) for b in export_batches(config, events(*names))] == sizes
