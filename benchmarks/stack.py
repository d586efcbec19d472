"""Where a benchmark runs: the servers named by the environment's URLs, or a fresh embedded stack.

Every benchmark entry point goes through `run_on_stack`, so each measures a process configured as
the server's root configures its own (`plugin_server/app/runner.py`): warnings-only logs and the
garbage-collector policy of `GC_GEN0_THRESHOLD`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import trio

from plugin_server.app.config import Settings
from plugin_server.core import gc_policy, logs
from plugin_server.ops.embedded import EmbeddedStack

URL_NAMES = ("DATABASE_URL", "REDIS_URL", "KAFKA_HOSTS", "CLICKHOUSE_URL")
T = TypeVar("T")


def run_on_stack(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """`trio.run(fn, urls, *args)`: on the servers in the environment when all four URLs are set,
    else on an embedded stack started for this run and stopped after it."""
    logs.configure("warning")
    gc_policy.configure(Settings.from_env(os.environ).gc_gen0_threshold)
    if all(os.environ.get(name) for name in URL_NAMES):
        return trio.run(fn, {name: os.environ[name] for name in URL_NAMES}, *args)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        stack = EmbeddedStack(Path(tmp), prefer_default_ports=False, durable=False)
        try:
            return trio.run(fn, stack.start().as_env(), *args)
        finally:
            stack.stop()
