"""The storage adapters against real Postgres, Redis, Kafka and ClickHouse (chDB or a server)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid

import pytest
import trio
from aiokafka.partitioner import DefaultPartitioner

from plugin_server.core.errors import ServiceUnavailable, StorageError
from plugin_server.core.net import free_port
from plugin_server.storage.clickhouse import open_clickhouse
from plugin_server.storage.kafka.admin import delete_topics, ensure_topics
from plugin_server.storage.kafka.client import Record
from plugin_server.storage.kafka.consumer import open_consumer
from plugin_server.storage.kafka.producer import open_producer
from plugin_server.storage.migrations import load, migrate_clickhouse, migrate_postgres
from plugin_server.storage.postgres import open_postgres
from plugin_server.storage.redis import open_redis
from plugin_server.storage.teams import TeamStore

# --- Postgres ---------------------------------------------------------------------------------


async def test_postgres_migrations_are_idempotent(aio, services):
    async with open_postgres(services.database_url, max_size=2) as pg:
        assert await migrate_postgres(pg) == []  # the session applied them already
        names = {r["name"] for r in await pg.fetch("SELECT name FROM plugin_server_migrations")}
        assert {m.name for m in load("postgres")} <= names
        tables = {r["tablename"] for r in await pg.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {
            "posthog_team",
            "posthog_person",
            "posthog_persondistinctid",
            "posthog_pluginconfig",
            "plugin_server_jobs",
        } <= tables


async def test_concurrent_migrators_do_not_collide(aio, services):
    async with open_postgres(services.database_url, max_size=4) as pg:
        results = []

        async def run() -> None:
            results.append(await migrate_postgres(pg))

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(run)
        assert results == [[], [], []]


async def test_team_store_creates_unique_tokens_and_finds_them(aio, services):
    async with open_postgres(services.database_url, max_size=2) as pg:
        store = TeamStore(pg=pg)
        a, b = await store.create("a"), await store.create("b")
        assert a.api_token != b.api_token and a.api_token.startswith("phc_")
        found = await store.by_tokens([a.api_token, b.api_token, "phc_nobody"])
        assert {t.id for t in found} == {a.id, b.id}
        assert [t.name for t in await store.by_ids([a.id])] == ["a"]


async def test_postgres_errors_are_translated(aio, services):
    async with open_postgres(services.database_url, max_size=1) as pg:
        with pytest.raises(StorageError, match="SQLSTATE 42P01"):
            await pg.fetch("SELECT * FROM no_such_table")
    with pytest.raises(ServiceUnavailable):
        async with open_postgres(f"postgres://postgres@127.0.0.1:{free_port()}/posthog", max_size=1):
            pass


# --- Redis ------------------------------------------------------------------------------------


async def test_redis_roundtrip_and_ttl(aio, services):
    async with open_redis(services.redis_url) as redis:
        assert await redis.ping()
        key = f"test:{uuid.uuid4()}"
        await redis.set(key, "value", ttl_seconds=0.2)
        assert await redis.get(key) == b"value"
        await trio.sleep(0.4)
        assert await redis.get(key) is None


async def test_redis_unreachable_is_service_unavailable(aio):
    async with open_redis(f"redis://127.0.0.1:{free_port()}/0") as redis:
        with pytest.raises(ServiceUnavailable):
            await redis.ping()


# --- Kafka ------------------------------------------------------------------------------------


async def test_kafka_produce_consume_commit_and_lag(aio, services, unique):
    topic = f"t{unique}_roundtrip"
    assert await ensure_topics(hosts=services.kafka_hosts, topics=[topic], partitions=2) == [topic]
    assert await ensure_topics(hosts=services.kafka_hosts, topics=[topic], partitions=2) == []
    async with open_producer(hosts=services.kafka_hosts, client_id="test") as producer:
        await producer.send_batch(Record(topic, f"v{i}".encode(), f"k{i % 5}".encode()) for i in range(50))
    seen = []
    with trio.fail_after(60):
        async with open_consumer(
            hosts=services.kafka_hosts, topics=[topic], group_id=f"g{unique}", client_id="t"
        ) as consumer:
            while len(seen) < 50:
                batch = await consumer.getmany(timeout_ms=200, max_records=20)
                seen.extend(batch)
                if batch:
                    last = {}
                    for m in batch:
                        last[(m.topic, m.partition)] = m.offset + 1
                    await consumer.commit(last)
            assert sum((await consumer.lag()).values()) == 0
    assert sorted(m.value for m in seen) == sorted(f"v{i}".encode() for i in range(50))
    # A key always lands on one partition, and offsets rise within a partition.
    partitions_of_key: dict[bytes, set[int]] = {}
    for m in seen:
        partitions_of_key.setdefault(m.key, set()).add(m.partition)
    assert all(len(p) == 1 for p in partitions_of_key.values())
    # Committed: a new member of the group starts after everything.
    with trio.fail_after(60):
        async with open_consumer(
            hosts=services.kafka_hosts, topics=[topic], group_id=f"g{unique}", client_id="t2"
        ) as again:
            assert await again.getmany(timeout_ms=500, max_records=100) == []


async def test_a_member_is_joined_once_the_group_assigned_it_partitions_even_none(aio, services, unique):
    """`joined()` returns the assignment the group gave, without consuming; a member beyond the
    partition count joins with none instead of waiting for ever."""
    topic, group = f"t{unique}_join", f"g{unique}_join"
    await ensure_topics(hosts=services.kafka_hosts, topics=[topic], partitions=1)
    hosts = services.kafka_hosts
    with trio.fail_after(90):
        async with open_consumer(hosts=hosts, topics=[topic], group_id=group, client_id="first") as first:
            assert await first.joined() == {(topic, 0)}
            async with open_consumer(hosts=hosts, topics=[topic], group_id=group, client_id="second") as second:

                async def keep_polling() -> None:  # the first member rejoins the rebalance from its poll loop
                    while True:
                        await first.getmany(timeout_ms=100, max_records=1)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(keep_polling)
                    owned = await second.joined()
                    nursery.cancel_scope.cancel()
            # One partition, two members: the second joined whether the group gave it the partition or none.
            assert owned <= {(topic, 0)}


async def read_all(hosts: str, topic: str, expected: int, group: str) -> list:
    seen: list = []
    with trio.fail_after(60):
        async with open_consumer(hosts=hosts, topics=[topic], group_id=group, client_id="t") as consumer:
            while len(seen) < expected:
                seen.extend(await consumer.getmany(timeout_ms=200, max_records=5000))
    return seen


async def test_batched_produce_partitions_like_aiokafka_keeps_order_and_splits_full_batches(aio, services, unique):
    topic = f"t{unique}_batched"
    await ensure_topics(hosts=services.kafka_hosts, topics=[topic], partitions=4)
    # 3,000 records of 1 KB on 3 keys: each partition gets more than one 1 MB batch's worth.
    records = [Record(topic, f"{i:06d}".encode() + b"x" * 1024, f"key-{i % 3}".encode()) for i in range(3000)]
    records += [Record(topic, f"keyless-{i}".encode()) for i in range(10)]
    async with open_producer(hosts=services.kafka_hosts, client_id="test") as producer:
        await producer.send_batch(records)
    seen = await read_all(services.kafka_hosts, topic, len(records), f"g{unique}")
    assert sorted(m.value for m in seen) == sorted(r.value for r in records)  # all, once
    partitioner = DefaultPartitioner()
    for m in seen:
        if m.key is not None:  # where aiokafka's (and Java's) default partitioner puts the key
            assert m.partition == partitioner(m.key, [0, 1, 2, 3], [0, 1, 2, 3])
    by_key: dict[bytes | None, list] = {}
    for m in sorted(seen, key=lambda m: (m.partition, m.offset)):
        by_key.setdefault(m.key, []).append(m.value)
    for key, values in by_key.items():
        assert values == [r.value for r in records if r.key == key], key  # produce order, per key
    assert len({m.partition for m in seen if m.key is None}) == 1  # keyless: one partition per call


async def test_deleted_topics_are_gone_with_their_messages(aio, services, unique):
    topics = [f"t{unique}_del_a", f"t{unique}_del_b"]
    await ensure_topics(hosts=services.kafka_hosts, topics=topics, partitions=2)
    async with open_producer(hosts=services.kafka_hosts, client_id="test") as producer:
        await producer.send_batch([Record(topics[0], b"v", b"k")])
    assert await delete_topics(hosts=services.kafka_hosts, topics=[*topics, f"t{unique}_never"]) == topics
    assert await delete_topics(hosts=services.kafka_hosts, topics=topics) == []  # already gone: nothing to do
    assert await ensure_topics(hosts=services.kafka_hosts, topics=topics, partitions=2) == topics  # made anew
    async with open_consumer(
        hosts=services.kafka_hosts, topics=[topics[0]], group_id=f"g{unique}", client_id="t"
    ) as consumer:
        assert await consumer.getmany(timeout_ms=1000, max_records=10) == []  # the old message went with it


async def test_kafka_unreachable_is_service_unavailable(aio, monkeypatch):
    monkeypatch.setattr("plugin_server.storage.kafka.client.START_TIMEOUT_SECONDS", 3.0)
    with pytest.raises(ServiceUnavailable):
        async with open_producer(hosts=f"127.0.0.1:{free_port()}", client_id="test"):
            pass


# --- ClickHouse -------------------------------------------------------------------------------


async def test_clickhouse_migrations_insert_dedup_and_readonly_queries(aio, services):
    async with open_clickhouse(services.clickhouse_url) as ch:
        await migrate_clickhouse(ch)
        assert await migrate_clickhouse(ch) == []
        table = f"dedup_{uuid.uuid4().hex[:8]}"
        await ch.command(
            f"CREATE TABLE {table} (id UInt32, v String) ENGINE = MergeTree ORDER BY id "
            "SETTINGS non_replicated_deduplication_window = 100"
        )
        block = b'{"id":1,"v":"a"}\n{"id":2,"v":"b"}'
        await ch.insert_json(table, ["id", "v"], block, dedup_token="batch-1")
        await ch.insert_json(table, ["id", "v"], block, dedup_token="batch-1")  # a retry: ignored
        assert await ch.query_rows(f"SELECT count() FROM {table}") == [(2,)]
        await ch.insert_json(table, ["id", "v"], block, dedup_token="batch-2")
        assert await ch.query_rows(f"SELECT count() FROM {table}") == [(4,)]

        assert await ch.query_json(f"SELECT id FROM {table} ORDER BY id LIMIT 1;") == b'{"id":1}\n'
        for attack in (
            f"INSERT INTO {table} VALUES (9, 'x')",
            f"SELECT 1; DROP TABLE {table}",
            f"DROP TABLE {table}",
            "SET readonly = 0",
        ):
            with pytest.raises(StorageError):
                await ch.query_json(attack)
        assert await ch.query_rows(f"SELECT count() FROM {table}") == [(4,)]
        # The ingestion connection is not affected by the reader's read-only mode.
        await ch.insert_json(table, ["id", "v"], b'{"id":3,"v":"c"}', dedup_token="batch-3")
        assert await ch.query_rows(f"SELECT count() FROM {table}") == [(5,)]
        with pytest.raises(StorageError):
            await ch.query_json("SELECT nonsense(")


@pytest.mark.skipif(sys.platform != "linux", reason="chDB runs on Linux here")
async def test_second_process_on_a_chdb_directory_gets_a_clear_error(aio, tmp_path, services):
    if services.external:
        pytest.skip("uses chDB; the session is using a ClickHouse server")
    path = tmp_path / "ch"
    async with open_clickhouse(f"chdb://{path}"):
        script = textwrap.dedent(
            f"""
            import trio, sys
            from plugin_server.storage.clickhouse import open_clickhouse
            from plugin_server.core.errors import EngineLocked
            async def main():
                try:
                    async with open_clickhouse("chdb://{path}"):
                        print("opened")
                except EngineLocked as exc:
                    print("locked:", exc)
            trio.run(main)
            """
        )
        result = await trio.run_process([sys.executable, "-c", script], capture_stdout=True, capture_stderr=True)
    out = result.stdout.decode()
    assert out.startswith("locked:") and str(path) in out, (out, result.stderr.decode()[-2000:])


def test_stack_children_die_with_their_parent(tmp_path):
    """PR_SET_PDEATHSIG: a SIGKILLed dev leaves no orphans (checked with one real child)."""
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from plugin_server.ops.embedded import EmbeddedStack
        stack = EmbeddedStack(Path({str(tmp_path)!r}), prefer_default_ports=False)
        stack.data_dir = stack.data_dir.resolve(); (stack.data_dir / "logs").mkdir(parents=True)
        from plugin_server.ops.embedded import _binaries, free_port
        stack._start_redis(_binaries()["redis"], free_port())
        print(stack.pids()["redis"], flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    with parent.stdout:
        child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    for _ in range(100):
        try:
            with open(f"/proc/{child}/stat") as f:
                if f.read().split()[2] == "Z":
                    break
        except FileNotFoundError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"redis-server {child} outlived its killed parent")


async def test_direct_sink_dead_letters_only_the_rows_clickhouse_refuses(aio, services):
    from plugin_server.storage.sinks import DirectSink
    from plugin_server.storage.tables import Row

    async with open_clickhouse(services.clickhouse_url) as ch:
        await migrate_clickhouse(ch)
        table = "ingestion_warnings"
        team_id = int(uuid.uuid4().int % 1_000_000_000) + 1_000_000_000
        good = [
            f'{{"team_id":{team_id},"source":"t","type":"ok{i}","details":"{{}}","timestamp":"2024-01-01 00:00:00"}}'
            for i in range(7)
        ]
        bad = f'{{"team_id":{team_id},"source":"t","type":"bad","details":"{{}}","timestamp":"not a date"}}'
        sink = DirectSink(clickhouse=ch)
        for offset, line in enumerate([*good[:3], bad, *good[3:]]):
            sink.add(Row(table, line.encode()), topic="t", partition=0, offset=offset)
        rejected = await sink.flush()
        assert [r.row.line.decode() for r in rejected] == [bad]
        assert "Code: 41" in rejected[0].error
        assert await ch.query_rows(f"SELECT count() FROM ingestion_warnings WHERE team_id = {team_id}") == [(7,)]
        # A failure that is ClickHouse's, not the data's (here: no such table), is retryable.
        with pytest.raises(ServiceUnavailable):
            await ch.insert_json("no_such_table_anywhere", ["a"], b'{"a":1}', dedup_token="x")
