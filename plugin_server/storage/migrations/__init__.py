"""Versioned schema migrations for Postgres and ClickHouse.

Migrations are numbered `.sql` files in `postgres/` and `clickhouse/`, applied in order and
recorded in a `plugin_server_migrations` table in each database. Running them twice is safe:
applied ones are skipped, and every statement is idempotent besides. On Postgres each file runs
in one transaction (all files or none) under an advisory lock, so two processes migrating at once do not collide.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import asyncpg

from plugin_server.core.errors import PluginServerError
from plugin_server.storage.clickhouse import ClickHouse
from plugin_server.storage.postgres import Postgres

# Arbitrary constant key of the advisory lock that serializes concurrent migrators.
PG_MIGRATION_LOCK_KEY = 7_263_861_450

PG_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS plugin_server_migrations (
    name text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""
PG_APPLIED = "SELECT name FROM plugin_server_migrations"
PG_RECORD = "INSERT INTO plugin_server_migrations (name) VALUES ($1) ON CONFLICT DO NOTHING"

CH_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS plugin_server_migrations (
    name String,
    applied_at DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree ORDER BY name"""
CH_APPLIED = "SELECT DISTINCT name FROM plugin_server_migrations"


@dataclass(frozen=True, slots=True)
class Migration:
    name: str
    sql: str


def load(kind: str) -> list[Migration]:
    """The migrations of `kind` ('postgres' or 'clickhouse'), in the order they apply."""
    folder = resources.files(__package__) / kind
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [Migration(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


def split_statements(sql: str) -> list[str]:
    """Split a ClickHouse script into statements at ';' line ends, dropping '--' comment lines."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    statements, current = [], []
    for line in lines:
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current).strip().rstrip(";").strip())
            current = []
    tail = "\n".join(current).strip()
    if tail:
        statements.append(tail)
    return [s for s in statements if s]


class SchemaOutdated(PluginServerError):
    """The database lacks migrations this version needs."""

    def __init__(self, database: str, pending: list[str]) -> None:
        self.database = database
        self.pending = pending
        super().__init__(f"{database} lacks migrations {', '.join(pending)}: run `plugin-server --migrate` first")


async def pending_postgres(pg: Postgres) -> list[str]:
    exists = await pg.fetchval("SELECT to_regclass('plugin_server_migrations') IS NOT NULL")
    done = {r["name"] for r in await pg.fetch(PG_APPLIED)} if exists else set()
    return [m.name for m in load("postgres") if m.name not in done]


async def pending_clickhouse(ch: ClickHouse) -> list[str]:
    exists = await ch.query_rows("EXISTS TABLE plugin_server_migrations")
    done = {row[0] for row in await ch.query_rows(CH_APPLIED)} if exists and exists[0][0] else set()
    return [m.name for m in load("clickhouse") if m.name not in done]


async def migrate_postgres(pg: Postgres) -> list[str]:
    """Apply pending Postgres migrations; returns the names applied now."""
    migrations = load("postgres")

    async def apply(conn: asyncpg.Connection) -> list[str]:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", PG_MIGRATION_LOCK_KEY)
        await conn.execute(PG_CREATE_LEDGER)
        done = {r["name"] for r in await conn.fetch(PG_APPLIED)}
        applied = []
        for m in migrations:
            if m.name in done:
                continue
            await conn.execute(m.sql)
            await conn.execute(PG_RECORD, m.name)
            applied.append(m.name)
        return applied

    return await pg.run_in_transaction(apply)


async def migrate_clickhouse(ch: ClickHouse) -> list[str]:
    """Apply pending ClickHouse migrations; returns the names applied now."""
    await ch.command(CH_CREATE_LEDGER)
    done = {row[0] for row in await ch.query_rows(CH_APPLIED)}
    applied = []
    for m in load("clickhouse"):
        if m.name in done:
            continue
        for statement in split_statements(m.sql):
            await ch.command(statement)
        await ch.command("INSERT INTO plugin_server_migrations (name) VALUES ({name:String})", {"name": m.name})
        applied.append(m.name)
    return applied
