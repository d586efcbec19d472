"""The dead letter queue, for operators: list dead letters, and replay them once the cause is fixed.

Both commands read the dead letter topic from the beginning up to its end offsets measured at the
start, without a consumer group (`storage.kafka.reader.read_topic`), so they always terminate and never
move anybody's offsets. Parsing and filtering are pure functions; the I/O is at the bottom.

Replay is exactly once across repeated and concurrent runs, through a ledger in Postgres
(`plugin_server_dlq_replays`, one row per dead letter position). Per chunk of `REPLAY_CHUNK`:

1. in one transaction, `INSERT ... ON CONFLICT DO NOTHING RETURNING` the chunk's positions: this
   claims them. A concurrent replayer's insert of the same positions waits for our transaction,
   then gets nothing back if we commit (or everything, if we roll back): claimed sets are disjoint.
   Positions are inserted in ascending order, so two replayers cannot deadlock.
2. produce the claimed payloads to the ingestion topic and wait for every ack;
3. commit. If producing fails, the transaction rolls back (nothing is claimed) and the error is
   raised: the next run replays that chunk.

One window remains: acks received but the commit lost (the connection drops, the process dies
between 2 and 3), or a produce that failed half way. Those events reach the ingestion topic and
will be produced again by the next run. That is harmless: the replayed payload is the original
capture message, uuid included, so the copy becomes an event with the same uuid, and ClickHouse's
`events` is a ReplacingMergeTree ordered by a key ending in the uuid, which collapses it on merge
(and in `FINAL` queries). The insert dedup token covers a different duplicate: a retried insert of
the same input offsets. The copy arrives at new offsets, so it is the merge that removes it.

Dead letters whose payload is not a capture message are never put back on the ingestion topic:
rows ClickHouse refused (their payload is a ClickHouse row), letters with an empty payload, and
messages on the topic that are not dead letters at all. They count as `not_replayable`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from trio_asyncio import trio_as_aio

from plugin_server.app.config import Settings
from plugin_server.core import jsonx, logs
from plugin_server.ingestion.dead_letter import REJECTED_BY_CLICKHOUSE
from plugin_server.storage.kafka.client import Message, Record
from plugin_server.storage.kafka.producer import KafkaProducer, open_producer
from plugin_server.storage.kafka.reader import read_topic
from plugin_server.storage.migrations import SchemaOutdated, pending_postgres
from plugin_server.storage.postgres import Postgres, open_postgres

log = logs.get(__name__)

# Positions claimed per transaction: one produce round trip each; small enough that a concurrent
# replayer waiting on our uncommitted rows waits only for one chunk's acks.
REPLAY_CHUNK = 500
UNREADABLE = "unreadable_dead_letter"  # a message on the dead letter topic that is not one of ours
NOT_REPLAYABLE_REASONS = frozenset({REJECTED_BY_CLICKHOUSE, UNREADABLE})

CLAIM = """
INSERT INTO plugin_server_dlq_replays (topic, dlq_partition, dlq_offset)
SELECT $1, p, o FROM unnest($2::int[], $3::bigint[]) AS claimed(p, o) ORDER BY p, o
ON CONFLICT DO NOTHING
RETURNING dlq_partition, dlq_offset"""
REPLAYED = """
SELECT dlq_partition, dlq_offset FROM plugin_server_dlq_replays
WHERE topic = $1 AND (dlq_partition, dlq_offset) IN (SELECT p, o FROM unnest($2::int[], $3::bigint[]) AS t(p, o))"""

# --- pure ----------------------------------------------------------------------------------------

_RELATIVE = re.compile(r"(\d{1,9})([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, *, now: dt.datetime) -> dt.datetime:
    """`--since T`: ISO-8601 (UTC unless it names a zone), or an age before `now` like 30m, 2h, 7d."""
    text = text.strip()
    relative = _RELATIVE.fullmatch(text)
    try:
        if relative:
            return now - dt.timedelta(seconds=int(relative[1]) * _UNIT_SECONDS[relative[2]])
        value = dt.datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise ValueError(
            f"expected ISO-8601 (2024-05-01T12:00:00Z) or an age like 30m, 2h, 7d (units s m h d w), got {text!r}"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class DeadLetterEntry:
    """One message of the dead letter topic: where it sits, why it is there, what it held."""

    dlq_partition: int
    dlq_offset: int
    reason: str
    error: str
    at: dt.datetime | None  # error_timestamp, else the Kafka timestamp of the dead letter
    error_timestamp: str = ""
    event_uuid: str = ""
    team_id: int | None = None
    event: str = ""
    distinct_id: str = ""
    kafka_topic: str = ""
    kafka_partition: int | None = None
    kafka_offset: int | None = None
    raw_payload: str = ""


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _time(text: str) -> dt.datetime | None:
    try:
        value = dt.datetime.fromisoformat(text)  # ours are "YYYY-MM-DD HH:MM:SS", UTC
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def parse_entry(message: Message) -> DeadLetterEntry:
    """A dead letter as `dead_letter_message` wrote it; anything else is an `UNREADABLE` entry."""
    kafka_time = dt.datetime.fromtimestamp(message.timestamp_ms / 1000, dt.UTC) if message.timestamp_ms >= 0 else None
    try:
        body = jsonx.loads(message.value or b"")
    except ValueError as exc:
        body = exc
    if not isinstance(body, dict):
        error = f"not a dead letter: {body}" if isinstance(body, ValueError) else "not a dead letter: not a JSON object"
        return DeadLetterEntry(message.partition, message.offset, UNREADABLE, error, kafka_time)
    error_timestamp = _str(body.get("error_timestamp"))
    return DeadLetterEntry(
        dlq_partition=message.partition,
        dlq_offset=message.offset,
        reason=_str(body.get("reason")),
        error=_str(body.get("error")),
        at=_time(error_timestamp) or kafka_time,
        error_timestamp=error_timestamp,
        event_uuid=_str(body.get("event_uuid")),
        team_id=_int(body.get("team_id")),
        event=_str(body.get("event")),
        distinct_id=_str(body.get("distinct_id")),
        kafka_topic=_str(body.get("kafka_topic")),
        kafka_partition=_int(body.get("kafka_partition")),
        kafka_offset=_int(body.get("kafka_offset")),
        raw_payload=_str(body.get("raw_payload")),
    )


def matches(entry: DeadLetterEntry, *, reason: str | None = None, since: dt.datetime | None = None) -> bool:
    """Whether `entry` has `reason` and happened at or after `since` (None: any)."""
    if reason is not None and entry.reason != reason:
        return False
    return since is None or (entry.at is not None and entry.at >= since)


def replayable(entry: DeadLetterEntry) -> bool:
    """Whether the payload is a capture message that may go back onto the ingestion topic."""
    return bool(entry.raw_payload) and entry.reason not in NOT_REPLAYABLE_REASONS


def replay_key(raw_payload: str) -> bytes | None:
    """`<token>:<distinct_id>`, as capture keys messages, when the payload is such an envelope."""
    try:
        envelope = jsonx.loads(raw_payload)
    except ValueError:
        return None
    if not isinstance(envelope, dict):
        return None
    token, distinct_id = envelope.get("token"), envelope.get("distinct_id")
    if not (isinstance(token, str) and token and isinstance(distinct_id, str) and distinct_id):
        return None
    return f"{token}:{distinct_id}".encode("utf-8", "replace")


def replay_record(entry: DeadLetterEntry, *, topic: str) -> Record:
    return Record(topic, entry.raw_payload.encode("utf-8", "replace"), replay_key(entry.raw_payload))


def list_line(entry: DeadLetterEntry, *, replayed: bool) -> dict[str, Any]:
    """The JSON object `dlq list` prints for one dead letter."""
    return {
        "dlq_partition": entry.dlq_partition,
        "dlq_offset": entry.dlq_offset,
        "reason": entry.reason,
        "error": entry.error,
        "error_timestamp": entry.error_timestamp,
        "event_uuid": entry.event_uuid,
        "team_id": entry.team_id,
        "event": entry.event,
        "distinct_id": entry.distinct_id,
        "kafka_topic": entry.kafka_topic,
        "kafka_partition": entry.kafka_partition,
        "kafka_offset": entry.kafka_offset,
        "replayed": replayed,
    }


def list_summary(lines: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"listed": len(lines), "by_reason": dict(sorted(Counter(line["reason"] for line in lines).items()))}


def chunked(items: Sequence[DeadLetterEntry], size: int) -> Iterator[Sequence[DeadLetterEntry]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _positions(entries: Iterable[DeadLetterEntry]) -> tuple[list[int], list[int]]:
    ordered = sorted((e.dlq_partition, e.dlq_offset) for e in entries)
    return [p for p, _ in ordered], [o for _, o in ordered]


# --- I/O -----------------------------------------------------------------------------------------


async def read_dead_letters(settings: Settings) -> list[DeadLetterEntry]:
    """Every dead letter on the topic now, in (partition, offset) order."""
    messages = await read_topic(hosts=settings.kafka_hosts, topic=settings.kafka_dead_letter_topic)
    return [parse_entry(m) for m in messages]


async def _require_ledger(pg: Postgres) -> None:
    pending = await pending_postgres(pg)
    if pending:
        raise SchemaOutdated("postgres", pending)


async def _replayed(pg: Postgres, topic: str, entries: Sequence[DeadLetterEntry]) -> set[tuple[int, int]]:
    if not entries:
        return set()
    rows = await pg.fetch(REPLAYED, topic, *_positions(entries))
    return {(r["dlq_partition"], r["dlq_offset"]) for r in rows}


async def list_dead_letters(
    settings: Settings, *, reason: str | None = None, since: dt.datetime | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """The matching dead letters as `dlq list` prints them, the first `limit` in topic order."""
    async with open_postgres(settings.database_url, max_size=1) as pg:
        await _require_ledger(pg)
        entries = [e for e in await read_dead_letters(settings) if matches(e, reason=reason, since=since)]
        entries = entries[:limit] if limit is not None else entries
        done = await _replayed(pg, settings.kafka_dead_letter_topic, entries)
    return [list_line(e, replayed=(e.dlq_partition, e.dlq_offset) in done) for e in entries]


async def _replay_chunk(
    pg: Postgres, producer: KafkaProducer, *, dlq_topic: str, target: str, chunk: Sequence[DeadLetterEntry]
) -> int:
    """Claim the chunk's positions, produce the claimed ones, wait for acks, commit; how many."""

    async def claim_and_produce(conn: asyncpg.Connection) -> int:
        rows = await conn.fetch(CLAIM, dlq_topic, *_positions(chunk))
        claimed = {(r["dlq_partition"], r["dlq_offset"]) for r in rows}
        records = [replay_record(e, topic=target) for e in chunk if (e.dlq_partition, e.dlq_offset) in claimed]
        # Back into trio for the producer, inside the transaction: it commits only after the acks.
        await trio_as_aio(producer.send_batch)(records)
        return len(records)

    return await pg.run_in_transaction(claim_and_produce)


async def replay(
    settings: Settings,
    *,
    reason: str | None = None,
    since: dt.datetime | None = None,
    dry_run: bool = False,
    chunk_size: int = REPLAY_CHUNK,
) -> dict[str, Any]:
    """Replay the matching dead letters onto the ingestion topic, each once; returns the counts.

    With `dry_run`, `replayed` counts what would be replayed and nothing is written anywhere.
    """
    dlq_topic, target = settings.kafka_dead_letter_topic, settings.kafka_consumption_topic
    async with open_postgres(settings.database_url, max_size=1) as pg:
        await _require_ledger(pg)
        entries = [e for e in await read_dead_letters(settings) if matches(e, reason=reason, since=since)]
        candidates = [e for e in entries if replayable(e)]
        skipped = len(entries) - len(candidates)
        counts = {"replayed": 0, "already_replayed": 0, "not_replayable": skipped, "dry_run": dry_run}
        if dry_run:
            done = len(await _replayed(pg, dlq_topic, candidates))
            return dict(counts, replayed=len(candidates) - done, already_replayed=done)
        if not candidates:
            return counts
        async with open_producer(hosts=settings.kafka_hosts, client_id="plugin-server-dlq-replay") as producer:
            for chunk in chunked(candidates, chunk_size):
                produced = await _replay_chunk(pg, producer, dlq_topic=dlq_topic, target=target, chunk=chunk)
                counts["replayed"] += produced
                counts["already_replayed"] += len(chunk) - produced
                log.info("dlq_replay_chunk", topic=target, replayed=produced, already_replayed=len(chunk) - produced)
    return counts
