"""Bookkeeping writes of the plugin runtime (errors, capabilities, disabling) are best effort:
a failing Postgres is logged, never raised into the batch or the load."""

from __future__ import annotations

import pytest
import structlog

from plugin_server.core.errors import PluginServerError
from plugin_server.plugins.runtime import PluginRuntime


async def test_a_failed_bookkeeping_write_is_logged_not_raised():
    async def failing() -> None:
        raise PluginServerError("postgres is down")

    with structlog.testing.capture_logs() as logs:
        await PluginRuntime._best_effort("record the plugin error", 7, failing)
    assert logs == [
        {
            "event": "could not record the plugin error",
            "plugin_config_id": 7,
            "error": "postgres is down",
            "log_level": "warning",
        }
    ]


async def test_other_failures_are_not_swallowed():
    async def broken() -> None:
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        await PluginRuntime._best_effort("record the plugin error", 7, broken)


async def test_a_successful_write_logs_nothing():
    written = []

    async def write() -> None:
        written.append(True)

    with structlog.testing.capture_logs() as logs:
        await PluginRuntime._best_effort("record the plugin error", 7, write)
    assert (written, logs) == ([True], [])
