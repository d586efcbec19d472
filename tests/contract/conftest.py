"""Contract suites: each store's behaviour, run against its in-memory fake and its real adapter.

The real side uses the session's services (tests/conftest.py); every test that writes to Postgres
does so for a team of its own, so tests never see each other's rows.
"""

from __future__ import annotations

import pytest

from plugin_server.storage.postgres import open_postgres
from plugin_server.storage.redis import open_redis


@pytest.fixture
async def pg(aio, services):
    async with open_postgres(services.database_url, max_size=4) as pg:
        yield pg


@pytest.fixture
async def redis(aio, services):
    async with open_redis(services.redis_url) as redis:
        yield redis
