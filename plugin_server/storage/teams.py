"""Team queries against Postgres (posthog_team) and the CLI's team creation."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from plugin_server.storage.postgres import Postgres

TEAM_COLUMNS = "id, uuid::text AS uuid, name, api_token, anonymize_ips"
SELECT_BY_TOKENS = f"SELECT {TEAM_COLUMNS} FROM posthog_team WHERE api_token = ANY($1::text[])"
SELECT_BY_IDS = f"SELECT {TEAM_COLUMNS} FROM posthog_team WHERE id = ANY($1::int[])"
INSERT_TEAM = f"INSERT INTO posthog_team (name, api_token) VALUES ($1, $2) RETURNING {TEAM_COLUMNS}"
SELECT_FIRST = f"SELECT {TEAM_COLUMNS} FROM posthog_team ORDER BY id LIMIT 1"


@dataclass(frozen=True, slots=True)
class Team:
    id: int
    uuid: str
    name: str
    api_token: str
    anonymize_ips: bool


def _team(row: Mapping[str, Any] | asyncpg.Record) -> Team:
    return Team(
        id=row["id"], uuid=row["uuid"], name=row["name"], api_token=row["api_token"], anonymize_ips=row["anonymize_ips"]
    )


class TeamStore:
    def __init__(self, *, pg: Postgres) -> None:
        self._pg = pg

    async def by_tokens(self, tokens: list[str]) -> list[Team]:
        return [_team(r) for r in await self._pg.fetch(SELECT_BY_TOKENS, tokens)]

    async def by_ids(self, team_ids: list[int]) -> list[Team]:
        return [_team(r) for r in await self._pg.fetch(SELECT_BY_IDS, team_ids)]

    async def create(self, name: str) -> Team:
        """A new team with a fresh api token (PostHog's form: 'phc_' and 43 url-safe characters)."""
        row = await self._pg.fetchrow(INSERT_TEAM, name, "phc_" + secrets.token_urlsafe(32))
        assert row is not None, "INSERT ... RETURNING answers exactly one row"
        return _team(row)

    async def first(self) -> Team | None:
        row = await self._pg.fetchrow(SELECT_FIRST)
        return _team(row) if row else None
