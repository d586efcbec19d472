"""Fixtures the integration tests share: adapters on the session's real services."""

from __future__ import annotations

import pytest

from plugin_server.storage.postgres import open_postgres
from plugin_server.storage.redis import open_redis


@pytest.fixture
async def pg(aio, services):
    async with open_postgres(services.database_url, max_size=8) as pg:
        yield pg


@pytest.fixture
async def redis(aio, services):
    async with open_redis(services.redis_url) as redis:
        yield redis
