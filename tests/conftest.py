"""Shared fixtures: real services for integration and end-to-end tests.

The embedded stack (Postgres, Redis, tansu) is started once per session, unless DATABASE_URL,
REDIS_URL, KAFKA_HOSTS and CLICKHOUSE_URL are all set, in which case those servers are used.
ClickHouse for in-process tests is chDB in the session's directory; each server process an e2e
test starts gets a chDB directory of its own (chDB: one process per directory). Tests isolate
themselves with their own teams, topics and consumer groups, so they never see each other's data.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from plugin_server.app.config import Settings
from plugin_server.core.aio import open_loop
from plugin_server.ops.embedded import EmbeddedStack
from plugin_server.storage.migrations import migrate_postgres
from plugin_server.storage.postgres import open_postgres
from plugin_server.storage.teams import TeamStore

SERVICE_VARS = ("DATABASE_URL", "REDIS_URL", "KAFKA_HOSTS", "CLICKHOUSE_URL")


@dataclass(frozen=True)
class Services:
    database_url: str
    redis_url: str
    kafka_hosts: str
    clickhouse_url: str  # for this (the test) process
    external: bool
    root: Path

    def clickhouse_url_for_process(self, directory: Path) -> str:
        """A ClickHouse another process may open: the server itself, or a chDB directory of its own."""
        return self.clickhouse_url if self.external else f"chdb://{directory}"


async def _prepare(database_url: str) -> None:
    async with open_loop(), open_postgres(database_url, max_size=1) as pg:
        await migrate_postgres(pg)


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("services")
    if all(os.environ.get(v) for v in SERVICE_VARS):
        found = Services(*(os.environ[v] for v in SERVICE_VARS), external=True, root=root)
        trio.run(_prepare, found.database_url)
        yield found
        return
    stack = EmbeddedStack(root / "stack", prefer_default_ports=False, durable=False)
    urls = stack.start()
    try:
        found = Services(
            urls.database_url,
            urls.redis_url,
            urls.kafka_hosts,
            f"chdb://{root / 'clickhouse'}",
            external=False,
            root=root,
        )
        trio.run(_prepare, found.database_url)
        yield found
    finally:
        stack.stop()


@pytest.fixture
async def aio():
    """The trio-asyncio loop adapters need (the server's root opens it the same way)."""
    async with open_loop() as loop:
        yield loop


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def settings(services: Services, unique: str) -> Settings:
    """Settings for this test: the session's services, and topics and groups of its own."""
    return Settings.from_env(
        {
            "DATABASE_URL": services.database_url,
            "REDIS_URL": services.redis_url,
            "KAFKA_HOSTS": services.kafka_hosts,
            "CLICKHOUSE_URL": services.clickhouse_url,
            "KAFKA_CONSUMPTION_TOPIC": f"t{unique}_events_plugin_ingestion",
            "KAFKA_DEAD_LETTER_TOPIC": f"t{unique}_events_dead_letter_queue",
            "CLICKHOUSE_JSON_EVENTS_KAFKA_TOPIC": f"t{unique}_clickhouse_events_json",
            "CLICKHOUSE_INGESTION_WARNINGS_KAFKA_TOPIC": f"t{unique}_clickhouse_ingestion_warnings",
            "CLICKHOUSE_PERSON_KAFKA_TOPIC": f"t{unique}_clickhouse_person",
            "CLICKHOUSE_PERSON_DISTINCT_ID_KAFKA_TOPIC": f"t{unique}_clickhouse_person_distinct_id",
            "CLICKHOUSE_GROUPS_KAFKA_TOPIC": f"t{unique}_clickhouse_groups",
            "CLICKHOUSE_PLUGIN_LOG_ENTRIES_KAFKA_TOPIC": f"t{unique}_plugin_log_entries",
            "KAFKA_CONSUMER_GROUP": f"t{unique}_ingestion",
            "KAFKA_WRITER_GROUP": f"t{unique}_writer",
            "HTTP_PORT": "0",
            "INGESTION_BATCH_WAIT_MS": "20",
        }
    )


@pytest.fixture
async def team(aio, services: Services) -> dict:
    async with open_postgres(services.database_url, max_size=1) as pg:
        created = await TeamStore(pg=pg).create(f"test-{uuid.uuid4().hex[:6]}")
    return {"id": created.id, "api_token": created.api_token}
