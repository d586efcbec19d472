"""workers/async_handler.py: which rows of the events topic reach on_event / export_events."""

from __future__ import annotations

import json

from plugin_server.storage.kafka.client import Message
from workers.async_handler import ASYNC_SKIPPED, AsyncHandler


class Runtime:
    """The two questions the handler asks the plugin runtime, and what it was handed."""

    def __init__(self, teams: set[int]) -> None:
        self.teams = teams
        self.ran: list[list[dict]] = []

    def any_async(self) -> bool:
        return bool(self.teams)

    def wants_async(self, team_id: int) -> bool:
        return team_id in self.teams

    async def run_async(self, events, jobs) -> None:
        self.ran.append(events)


def message(offset: int, value: bytes) -> Message:
    return Message("clickhouse_events_json", 0, offset, None, value, 0)


def row(team_id: int, event: str) -> bytes:
    return json.dumps({"uuid": f"u-{event}", "event": event, "team_id": team_id, "distinct_id": "d", "properties": "{}",
                       "timestamp": "2026-11-25 10:00:00.000000", "person_properties": "{}"}).encode()  # fmt: skip


async def test_rows_of_teams_with_async_plugins_are_handed_over_in_order():
    runtime = Runtime({5})
    await AsyncHandler(runtime=runtime, jobs=None)(
        [message(0, row(5, "a")), message(1, row(6, "b")), message(2, row(5, "c"))]
    )
    assert [[e["event"] for e in events] for events in runtime.ran] == [["a", "c"]]


async def test_malformed_rows_are_skipped_and_counted():
    runtime = Runtime({5})
    before = ASYNC_SKIPPED._value.get()
    await AsyncHandler(runtime=runtime, jobs=None)(
        [message(0, b"not json"), message(1, b"[1]"), message(2, row(5, "a"))]
    )
    assert ASYNC_SKIPPED._value.get() - before == 2
    assert [[e["event"] for e in events] for events in runtime.ran] == [["a"]]


async def test_without_async_plugins_a_batch_is_acknowledged_unread():
    runtime = Runtime(set())
    before = ASYNC_SKIPPED._value.get()
    await AsyncHandler(runtime=runtime, jobs=None)([message(0, b"not json"), message(1, row(5, "a"))])
    assert runtime.ran == [] and ASYNC_SKIPPED._value.get() == before


# --- the direct sink's side: which durable rows the ingestion worker produces for the async side


def test_the_ingestion_worker_forwards_event_rows_of_teams_with_async_plugins_without_parsing_them():
    from plugin_server.ingestion.event import Source
    from plugin_server.storage.tables import EVENTS_TABLE, PERSON_TABLE, Row
    from workers.ingestion import IngestionHandler

    source = Source("events", 0, 1, 0)
    rows = [
        (source, Row(EVENTS_TABLE, b"not even json: the team travels with the row", b"u1", 5)),
        (source, Row(EVENTS_TABLE, row(6, "other team"), b"u2", 6)),
        (source, Row(PERSON_TABLE, b"{}", b"p", None)),
        (source, Row(EVENTS_TABLE, row(5, "read back from a topic"), b"u3", None)),  # no team: not forwarded
    ]

    def forwarded(teams: set[int]) -> list[bytes]:
        handler = IngestionHandler(pipeline=None, sink=None, producer=None, dead_letter_topic="dlq",
                                   async_events=("events_json", Runtime(teams)))  # fmt: skip
        records = handler._async_records(rows)
        assert all(r.topic == "events_json" for r in records)
        return [r.key for r in records]

    assert forwarded({5}) == [b"u1"]
    assert forwarded({5, 6}) == [b"u1", b"u2"]
    assert forwarded(set()) == []
