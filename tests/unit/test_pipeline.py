import datetime as dt
import json
from collections import Counter, defaultdict

import pytest

from plugin_server.core.errors import leaves
from plugin_server.ingestion import pipeline as pipeline_module
from plugin_server.ingestion.pipeline import IngestionPipeline, RetryBatch
from plugin_server.ingestion.results import Drop, Retry
from plugin_server.ingestion.teams import TeamCache
from plugin_server.ops import synth
from plugin_server.storage.kafka.client import Message
from plugin_server.storage.tables import EVENTS_TABLE, WARNINGS_TABLE
from plugin_server.storage.teams import Team
from plugin_server.testing.teams import InMemoryTeamStore

NOW = dt.datetime(2023, 6, 1, 12, 0, tzinfo=dt.UTC)
TOPIC = "events_plugin_ingestion"
TEAM_A = Team(id=1, uuid="00000000-0000-4000-8000-000000000001", name="A", api_token="tok_a", anonymize_ips=False)
TEAM_B = Team(id=2, uuid="00000000-0000-4000-8000-000000000002", name="B", api_token="tok_b", anonymize_ips=True)
GARBAGE_REASONS = {
    "not_json": "invalid_json",
    "not_object": "not_an_object",
    "data_not_string": "invalid_data",
    "data_invalid_json": "invalid_data",
    "missing_token": "missing_token",
    "bad_uuid": "invalid_uuid",
    "empty_distinct_id": "invalid_distinct_id",
    "deeply_nested": "invalid_data",
}


def make_pipeline(tasks: int) -> tuple[IngestionPipeline, InMemoryTeamStore]:
    db = InMemoryTeamStore(TEAM_A, TEAM_B)
    cache = TeamCache(fetch_by_tokens=db.by_tokens, fetch_by_ids=db.by_ids, ttl_seconds=60, clock=lambda: 0.0)
    return IngestionPipeline(teams=cache, tasks_per_worker=tasks, clock=lambda: NOW), db


def values(token: str, events: int, persons: int, seed: int) -> list[bytes]:
    return [m.value for m in synth.generate(token=token, events=events, persons=persons, seed=seed, now=NOW)]


def rewrite(value: bytes, change) -> bytes:
    envelope = json.loads(value)
    data = json.loads(envelope["data"])
    change(envelope, data)
    envelope["data"] = json.dumps(data)
    return json.dumps(envelope).encode()


def by_team_id(team_id: int):
    def change(envelope: dict, data: dict) -> None:
        del envelope["token"]
        envelope["team_id"] = team_id

    return change


def bad_timestamp(envelope: dict, data: dict) -> None:
    data.pop("offset", None)
    data["timestamp"] = "notISO"


def interleave(*lists: list[bytes]) -> list[bytes]:
    out, longest = [], max(len(values) for values in lists)
    for i in range(longest):
        out.extend(values[i] for values in lists if i < len(values))
    return out


GOOD_A = values("tok_a", 60, 6, 1)
GOOD_B = values("tok_b", 30, 4, 2)
BY_ID = [rewrite(v, by_team_id(1)) for v in values("tok_x", 5, 2, 3)]
WITH_WARNING = [rewrite(GOOD_A[0], bad_timestamp)]
GOOD_A_FIRST_UUID = json.loads(GOOD_A[0])["uuid"]
UNKNOWN_TOKEN = values("tok_unknown", 10, 2, 4)
UNKNOWN_ID = [rewrite(v, by_team_id(99)) for v in values("tok_y", 2, 1, 5)]
GARBAGE = list(synth.garbage(count=2 * len(synth.GARBAGE_KINDS), seed=6))
# the message with a warning reuses GOOD_A[0]'s uuid: leave GOOD_A[0] itself out
GOOD = GOOD_A[1:] + GOOD_B + BY_ID + WITH_WARNING
BATCH_VALUES = interleave(GOOD_A[1:], GOOD_B, BY_ID, WITH_WARNING, UNKNOWN_TOKEN, UNKNOWN_ID, GARBAGE, [b"", None])


def messages(raw_values: list[bytes | None]) -> list[Message]:
    """Garbage on partition 1, everything else on partition 0, offsets in order of arrival."""
    offsets: Counter = Counter()
    out = []
    for value in raw_values:
        partition = 1 if value in GARBAGE or not value else 0
        out.append(Message(TOPIC, partition, 100 + offsets[partition], b"key", value, 1_685_620_800_000))
        offsets[partition] += 1
    return out


BATCH = messages(BATCH_VALUES)


def envelope_of(value: bytes) -> dict:
    return json.loads(value)


def decoded_rows(out) -> list[tuple[str, dict]]:
    return [(row.table, json.loads(row.line)) for _, row in out.rows]


@pytest.mark.parametrize("tasks", [1, 8])
async def test_batch_rows(tasks):
    out = await make_pipeline(tasks)[0].process(BATCH)
    rows = decoded_rows(out)
    events = [r for table, r in rows if table == EVENTS_TABLE]
    assert {table for table, _ in rows} == {EVENTS_TABLE, WARNINGS_TABLE}
    assert sorted(r["uuid"] for r in events) == sorted(envelope_of(v)["uuid"] for v in GOOD)
    assert len(events) == len(GOOD)

    for source, row in out.rows:
        value = json.loads(row.line)
        assert (value["_offset"], value["_partition"]) == (source.offset, source.partition)
        if row.table == EVENTS_TABLE:
            assert row.key == value["uuid"].encode()

    expected_team = {}
    for v in GOOD:
        envelope = envelope_of(v)
        expected_team[envelope["uuid"]] = {"tok_a": 1, "tok_b": 2}.get(envelope.get("token"), envelope.get("team_id"))
    assert {r["uuid"]: r["team_id"] for r in events} == expected_team

    warnings = [r for table, r in rows if table == WARNINGS_TABLE]
    assert [(w["type"], json.loads(w["details"])["eventUuid"]) for w in warnings] == [
        ("ignored_invalid_timestamp", GOOD_A_FIRST_UUID)
    ]
    assert out.warnings == ["ignored_invalid_timestamp"]
    assert out.dropped == []


@pytest.mark.parametrize("tasks", [1, 8])
async def test_ip_follows_the_team_setting(tasks):
    out = await make_pipeline(tasks)[0].process(BATCH)
    ips = {envelope_of(v)["uuid"]: envelope_of(v)["ip"] for v in GOOD}
    for table, row in decoded_rows(out):
        if table == EVENTS_TABLE:
            properties = json.loads(row["properties"])
            assert properties.get("$ip") == (None if row["team_id"] == TEAM_B.id else ips[row["uuid"]])


@pytest.mark.parametrize("tasks", [1, 8])
async def test_batch_dead_letters(tasks):
    out = await make_pipeline(tasks)[0].process(BATCH)
    expected = Counter(
        ["unknown_token"] * len(UNKNOWN_TOKEN)
        + ["unknown_team_id"] * len(UNKNOWN_ID)
        + [GARBAGE_REASONS[kind] for kind in synth.GARBAGE_KINDS] * 2
        + ["empty_message"] * 2
    )
    assert Counter(reason for reason, _ in out.dead_letters) == expected

    positions = {(m.partition, m.offset): m.value for m in BATCH}
    for reason, value in out.dead_letters:
        payload = json.loads(value)
        assert payload["reason"] == reason
        assert payload["kafka_topic"] == TOPIC
        raw = positions[(payload["kafka_partition"], payload["kafka_offset"])]
        assert payload["raw_payload"] == (raw or b"").decode("utf-8", errors="replace")
        location = "resolve_team" if reason.startswith("unknown_") else "parse"
        assert payload["error_location"] == f"plugin_server_ingest_event:{location}"


@pytest.mark.parametrize("tasks", [1, 8])
async def test_rows_of_one_distinct_id_keep_offset_order(tasks):
    out = await make_pipeline(tasks)[0].process(BATCH)
    offsets: dict[tuple[int, str], list[int]] = defaultdict(list)
    for table, row in decoded_rows(out):
        if table == EVENTS_TABLE:
            offsets[(row["team_id"], row["distinct_id"])].append(row["_offset"])
    assert len(offsets) > 5
    assert any(len(o) > 5 for o in offsets.values())
    for key, seen in offsets.items():
        assert seen == sorted(seen), key


async def test_one_and_eight_tasks_give_the_same_output():
    one = await make_pipeline(1)[0].process(BATCH)
    eight = await make_pipeline(8)[0].process(BATCH)
    assert {(s, r.table, r.line, r.key) for s, r in one.rows} == {(s, r.table, r.line, r.key) for s, r in eight.rows}
    assert len(one.rows) == len(eight.rows)

    def without_id(dead_letters):
        return sorted(json.dumps({**json.loads(v), "id": ""}, sort_keys=True) for _, v in dead_letters)

    assert without_id(one.dead_letters) == without_id(eight.dead_letters)
    assert sorted(one.warnings) == sorted(eight.warnings)


async def test_teams_are_fetched_once_per_batch():
    pipeline, db = make_pipeline(8)
    await pipeline.process(BATCH)
    assert db.token_calls == [["tok_a", "tok_b", "tok_unknown"]]
    assert db.id_calls == [[1, 99]]
    await pipeline.process(BATCH)  # all cached now
    assert len(db.token_calls) == 1 and len(db.id_calls) == 1


@pytest.mark.parametrize("tasks", [1, 8])
async def test_empty_batch(tasks):
    pipeline, db = make_pipeline(tasks)
    out = await pipeline.process([])
    assert (out.rows, out.dead_letters, out.dropped, out.warnings) == ([], [], [], [])
    assert (db.token_calls, db.id_calls) == ([], [])


@pytest.mark.parametrize("tasks", [1, 8])
async def test_drop_result_is_counted_not_kept(tasks, monkeypatch):
    monkeypatch.setattr(pipeline_module, "normalize", lambda event, wallclock: Drop("plugin_dropped"))
    out = await make_pipeline(tasks)[0].process(messages(GOOD_B))
    assert out.rows == [] and out.dead_letters == []
    assert out.dropped == ["plugin_dropped"] * len(GOOD_B)


@pytest.mark.parametrize("tasks", [1, 8])
async def test_retry_result_fails_the_whole_batch(tasks, monkeypatch):
    monkeypatch.setattr(pipeline_module, "normalize", lambda event, wallclock: Retry("postgres down"))
    with pytest.raises(BaseException) as info:
        await make_pipeline(tasks)[0].process(messages(GOOD_B))
    found = leaves(info.value)
    assert found and all(isinstance(e, RetryBatch) for e in found)
    assert all(e.retryable and str(e) == "normalize: postgres down" for e in found)


async def test_nan_offset_does_not_fail_the_batch():
    def nan_offset(envelope: dict, data: dict) -> None:
        data.pop("timestamp", None)
        data["offset"] = "NaN"

    poison = rewrite(GOOD_B[0], nan_offset)
    out = await make_pipeline(1)[0].process(messages([poison, *GOOD_B[1:]]))
    assert len([s for s, r in out.rows if r.table == EVENTS_TABLE]) + len(out.dead_letters) == len(GOOD_B)
