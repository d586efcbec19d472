"""`plugin-server dlq` as an operator meets it: list with filters, replay once, bad arguments."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import trio

from plugin_server.core import aio
from plugin_server.ingestion.dead_letter import (
    dead_letter_message,
    rejected_row_message,
)
from plugin_server.ingestion.event import Source
from plugin_server.ingestion.results import DeadLetter
from plugin_server.storage.kafka.admin import ensure_topics
from plugin_server.storage.kafka.client import Record
from plugin_server.storage.kafka.producer import open_producer
from plugin_server.storage.kafka.reader import read_topic
from tests.e2e.conftest import cli

NOW = dt.datetime.now(dt.UTC)


def capture() -> bytes:
    return json.dumps({"token": "phc_gone", "distinct_id": "d1", "uuid": str(uuid.uuid4()), "data": "{}"}).encode()


def letter(raw: bytes, *, at: dt.datetime) -> bytes:
    source = Source("events_plugin_ingestion", 0, 7, 0)
    result = DeadLetter("unknown_token", "no team")
    return dead_letter_message(raw=raw, source=source, result=result, location="teams", at=at)


def produce_dead_letters(env: dict[str, str], letters: list[bytes]) -> None:
    hosts, dlq_topic = env["KAFKA_HOSTS"], env["KAFKA_DEAD_LETTER_TOPIC"]

    async def main() -> None:
        async with aio.open_loop():
            await ensure_topics(hosts=hosts, topics=[dlq_topic, env["KAFKA_CONSUMPTION_TOPIC"]], partitions=2)
            async with open_producer(hosts=hosts, client_id="e2e") as producer:
                await producer.send_batch(Record(dlq_topic, value) for value in letters)

    trio.run(main)


def ingested(env: dict[str, str]) -> list[bytes]:
    async def main() -> list[bytes]:
        async with aio.open_loop():
            return [m.value for m in await read_topic(hosts=env["KAFKA_HOSTS"], topic=env["KAFKA_CONSUMPTION_TOPIC"])]

    return trio.run(main)


def listed(*args: str, env: dict[str, str]) -> tuple[list[dict], dict]:
    result = cli("dlq", "list", *args, env=env, check=True)
    return [json.loads(line) for line in result.stdout.splitlines()], json.loads(result.stderr.strip().splitlines()[-1])


def replayed(*args: str, env: dict[str, str]) -> dict:
    result = cli("dlq", "replay", *args, env=env, check=True)
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0])


def test_dlq_list_filters_and_replay_happens_once(server_env):
    fresh, old = capture(), capture()
    rejected = rejected_row_message(line=b'{"uuid": "x"}', error="Cannot parse input", location="sink", at=NOW)
    produce_dead_letters(server_env, [letter(fresh, at=NOW), letter(old, at=NOW - dt.timedelta(days=2)), rejected])

    lines, summary = listed(env=server_env)
    assert summary == {"listed": 3, "by_reason": {"clickhouse_rejected": 1, "unknown_token": 2}}
    assert [line["replayed"] for line in lines] == [False, False, False]
    assert listed("--since", "1d", env=server_env)[1]["listed"] == 2
    since_iso = (NOW - dt.timedelta(hours=1)).isoformat()
    assert listed("--since", since_iso, "--reason", "unknown_token", env=server_env)[1] == {
        "listed": 1, "by_reason": {"unknown_token": 1},
    }  # fmt: skip
    assert listed("--limit", "1", env=server_env)[1]["listed"] == 1

    def counts(new: int, old: int, *, dry_run: bool = False) -> dict:
        return {"replayed": new, "already_replayed": old, "not_replayable": 1, "dry_run": dry_run}

    assert replayed("--dry-run", env=server_env) == counts(2, 0, dry_run=True)
    assert ingested(server_env) == []
    assert replayed("--since", "1d", env=server_env) == counts(1, 0)
    assert replayed(env=server_env) == counts(1, 1)
    assert replayed(env=server_env) == counts(0, 2)
    assert sorted(ingested(server_env)) == sorted([fresh, old])
    lines, _ = listed(env=server_env)
    assert {line["reason"]: line["replayed"] for line in lines} == {"unknown_token": True, "clickhouse_rejected": False}


def test_dlq_on_an_empty_topic_lists_nothing(server_env):
    lines, summary = listed(env=server_env)
    assert lines == [] and summary == {"listed": 0, "by_reason": {}}
    assert replayed(env=server_env) == {"replayed": 0, "already_replayed": 0, "not_replayable": 0, "dry_run": False}


def test_dlq_bad_arguments_exit_2(server_env):
    cases = [
        ("dlq",),
        ("dlq", "peek"),
        ("dlq", "list", "--since", "yesterday"),
        ("dlq", "list", "--since", "-2h"),
        ("dlq", "list", "--since", "2024-13-01"),
        ("dlq", "replay", "--since", ""),
        ("dlq", "list", "--limit", "0"),
        ("dlq", "list", "--limit", "many"),
        ("dlq", "replay", "--limit", "3"),
        ("dlq", "list", "--dry-run"),
    ]
    for args in cases:
        result = cli(*args, env=server_env)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr and result.stdout == "", args
    bad_since = cli("dlq", "list", "--since", "yesterday", env=server_env)
    assert "--since" in bad_since.stderr and "expected ISO-8601" in bad_since.stderr
