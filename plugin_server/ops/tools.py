"""The CLI's one-shot commands: migrate, teams create, query, healthcheck, synth.

Each is an async function taking the settings and what the command line gave, returning an exit
code and printing its result to stdout (JSON where a program may read it).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import urllib.parse
from typing import TypedDict

import httpx
import trio

from plugin_server.app.config import Settings
from plugin_server.app.topics import row_topics
from plugin_server.core.errors import PluginServerError
from plugin_server.ops import synth
from plugin_server.storage.clickhouse import open_clickhouse
from plugin_server.storage.kafka.admin import ensure_topics
from plugin_server.storage.kafka.client import Record
from plugin_server.storage.kafka.producer import open_producer
from plugin_server.storage.migrations import migrate_clickhouse, migrate_postgres
from plugin_server.storage.postgres import open_postgres
from plugin_server.storage.teams import TeamStore

# Partitions of the topics `--migrate` creates: enough for several worker processes to share.
TOPIC_PARTITIONS = 8
HTTP_TIMEOUT_SECONDS = 10.0
SYNTH_CHUNK = 5000  # messages per producer round trip (one trio-asyncio crossing each)


def topics_of(settings: Settings) -> list[str]:
    return [settings.kafka_consumption_topic, settings.kafka_dead_letter_topic, *row_topics(settings).values()]


async def migrate(settings: Settings, *, clickhouse: bool = True) -> dict[str, list[str]]:
    """Apply Postgres and ClickHouse migrations and create Kafka topics; report what was done."""
    report: dict[str, list[str]] = {}
    async with open_postgres(settings.database_url, max_size=2) as pg:
        report["postgres"] = await migrate_postgres(pg)
    if clickhouse:
        async with open_clickhouse(settings.clickhouse_url) as ch:
            report["clickhouse"] = await migrate_clickhouse(ch)
    report["kafka_topics"] = await ensure_topics(
        hosts=settings.kafka_hosts, topics=topics_of(settings), partitions=TOPIC_PARTITIONS
    )
    return report


def print_migrate_report(report: dict[str, list[str]]) -> None:
    for what, done in report.items():
        label = "created" if what == "kafka_topics" else "applied"
        print(f"{what}: {label} {', '.join(done)}" if done else f"{what}: up to date")


class CreatedTeam(TypedDict):
    """What `teams create` prints."""

    id: int
    uuid: str
    name: str
    api_token: str


async def create_team(settings: Settings, name: str) -> CreatedTeam:
    async with open_postgres(settings.database_url, max_size=1) as pg:
        team = await TeamStore(pg=pg).create(name)
    return {"id": team.id, "uuid": team.uuid, "name": team.name, "api_token": team.api_token}


async def query(settings: Settings, sql: str) -> bytes:
    """Run a read-only query: on a ClickHouse server directly, on chDB through the running server."""
    if urllib.parse.urlsplit(settings.clickhouse_url).scheme in ("http", "https"):
        async with open_clickhouse(settings.clickhouse_url) as ch:
            return await ch.query_json(sql)
    if not settings.plugin_server_admin_token:
        raise PluginServerError(
            "querying the embedded engine goes through the running server: set PLUGIN_SERVER_ADMIN_TOKEN "
            "(dev writes it to DIR/stack.env)"
        )
    url = f"http://127.0.0.1:{settings.http_port}/query"
    headers = {"Authorization": f"Bearer {settings.plugin_server_admin_token}"}
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS * 12) as client:
            response = await client.post(url, content=sql.encode(), headers=headers)
    except httpx.HTTPError as exc:
        raise PluginServerError(f"no plugin-server answering on {url}: {exc}") from exc
    if response.status_code != 200:
        try:
            detail = response.json().get("error", response.text)
        except ValueError:
            detail = response.text
        raise PluginServerError(f"query failed ({response.status_code}): {detail}")
    return response.content


def healthcheck(settings: Settings) -> bool:
    url = f"http://127.0.0.1:{settings.http_port}/_health"
    try:
        return httpx.get(url, timeout=HTTP_TIMEOUT_SECONDS).status_code == 200
    except httpx.HTTPError:
        return False


async def produce_synth(
    settings: Settings, *, token: str, events: int, persons: int, seed: int, rate: float | None, topic: str | None
) -> int:
    """Produce `events` synthetic capture messages, at most `rate` per second if given."""
    topic = topic or settings.kafka_consumption_topic
    messages = synth.generate(token=token, events=events, persons=persons, seed=seed, now=dt.datetime.now(dt.UTC))
    chunk = SYNTH_CHUNK if rate is None else max(1, min(SYNTH_CHUNK, int(rate / 10) or 1))
    sent = 0
    started = trio.current_time()
    async with open_producer(hosts=settings.kafka_hosts, client_id="plugin-server-synth") as producer:
        while True:
            batch = [Record(topic, m.value, m.key) for _, m in zip(range(chunk), messages, strict=False)]
            if not batch:
                break
            await producer.send_batch(batch)
            sent += len(batch)
            if rate is not None:
                await trio.sleep_until(started + sent / rate)
    elapsed = trio.current_time() - started
    print(json.dumps({"produced": sent, "topic": topic, "seconds": round(elapsed, 3)}), file=sys.stderr)
    return sent
