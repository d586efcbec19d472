"""One behaviour suite for the team store: the Postgres adapter and the in-memory fake."""

from __future__ import annotations

from contextlib import asynccontextmanager

import pytest

from plugin_server.storage.postgres import open_postgres
from plugin_server.storage.teams import TeamStore
from plugin_server.testing.teams import InMemoryTeamStore


@asynccontextmanager
async def real_store(services):
    async with open_postgres(services.database_url, max_size=2) as pg:
        yield TeamStore(pg=pg)


@asynccontextmanager
async def fake_store(services):
    yield InMemoryTeamStore()


@pytest.fixture(params=[real_store, fake_store], ids=["postgres", "in-memory"])
async def store(request, aio, services):
    async with request.param(services) as opened:
        yield opened


async def test_created_teams_are_found_by_token_and_id(store):
    a, b = await store.create("a"), await store.create("b")
    assert a.id != b.id and a.api_token != b.api_token
    assert a.api_token.startswith("phc_") and len(a.api_token) > 40
    assert not a.anonymize_ips
    assert {t.id for t in await store.by_tokens([a.api_token, b.api_token])} == {a.id, b.id}
    assert await store.by_ids([b.id]) == [b]


async def test_unknown_keys_find_nothing(store):
    assert await store.by_tokens(["phc_nobody"]) == []
    assert await store.by_ids([2_000_000_000]) == []
    assert await store.by_tokens([]) == [] and await store.by_ids([]) == []


async def test_first_is_the_oldest_team(store):
    created = await store.create("x")
    first = await store.first()
    assert first is not None and first.id <= created.id
