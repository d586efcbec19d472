"""Plugins installed for one team in any plugin store, and a runtime over them.

The runtime's logic runs on the in-memory stores (tests/unit/plugins/test_runtime.py); what needs
real sockets runs the same world on Postgres and Redis (tests/integration/test_plugins.py). The
fakes can stand in because the suites in tests/contract hold them to the real services' behaviour.
"""

from __future__ import annotations

import json

from plugin_server.plugins.loaded import LoadedConfig
from plugin_server.plugins.logs import LogTarget, PluginLogs
from plugin_server.plugins.meta import Meta
from plugin_server.plugins.meta.cache import Cache
from plugin_server.plugins.meta.fetch import Fetch
from plugin_server.plugins.meta.jobs import Jobs
from plugin_server.plugins.meta.logger import Logger
from plugin_server.plugins.meta.metrics import Metrics
from plugin_server.plugins.meta.storage import Storage
from plugin_server.plugins.meta.utils import Cursor, Utils
from plugin_server.plugins.runtime import PluginRuntime
from plugin_server.storage.jobs import JobQueueLike
from plugin_server.storage.plugins import ConfigRow, PluginStore
from plugin_server.storage.redis import Redis
from plugin_server.testing.jobs import InMemoryJobQueue
from plugin_server.testing.plugins import InMemoryPluginStore
from plugin_server.testing.redis import InMemoryRedis
from vm.sandbox import compile_plugin


class Plugins:
    """Installs plugins for one team and runs a runtime over them."""

    def __init__(self, store: PluginStore | InMemoryPluginStore, redis: Redis | InMemoryRedis, team_id: int) -> None:
        self.store = store
        self.redis = redis
        self.team_id = team_id
        self.logs = PluginLogs()
        self.jobs: JobQueueLike | None = None

    async def install(self, source: str, *, order: int = 0, config: dict | None = None, schema=None, name="p") -> int:
        _, config_id = await self.store.install(
            team_id=self.team_id, name=name, description="", url="", config_schema=schema or [], capabilities={},
            sources={"main.py": source, "plugin.json": json.dumps({"name": name})}, config=config or {}, order=order,
        )  # fmt: skip
        return config_id

    def runtime(self, **overrides) -> PluginRuntime:
        options = {"task_timeout": 2.0, "threads": 2, "channel": f"reload-{self.team_id}"} | overrides
        return PluginRuntime(store=self.store, redis=self.redis, logs=self.logs, **options)

    async def process(self, runtime: PluginRuntime, events: list[dict]) -> list[dict | None]:
        async with runtime.pinned() as generation:
            return await runtime.process_events(generation.chains.get(self.team_id, []), events)

    def messages(self, config_id: int | None = None) -> list[tuple[str, str, str]]:
        rows = [json.loads(r.line) for r in self.logs.drain()]
        return [(r["source"], r["type"], r["message"]) for r in rows if config_id in (None, r["plugin_config_id"])]

    async def enabled(self, config_id: int) -> bool:
        """Whether the config is still enabled (the test team has no organization, so enabled
        and active are one)."""
        return any(r.config_id == config_id for r in await self.store.active_configs())

    async def plugin_id_of(self, config_id: int) -> int:
        (row,) = [r for r in await self.store.active_configs() if r.config_id == config_id]
        return row.plugin_id


def event(n: int, **properties) -> dict:
    return {
        "uuid": f"00000000-0000-4000-8000-{n:012d}", "event": "$pageview", "distinct_id": f"d{n}",
        "properties": properties, "timestamp": None, "team_id": None, "ip": None, "site_url": "", "now": "",
        "sent_at": None,
    }  # fmt: skip


def events(plugins: Plugins, count: int) -> list[dict]:
    return [event(n) | {"team_id": plugins.team_id, "properties": {"n": n}} for n in range(count)]


ONE_CONFIG_TIMEOUT = 5.0
ONE_CONFIG_TARGET = LogTarget(2, 3, 7, "instance")


class OneConfig:
    """One plugin config loaded on the in-memory fakes, with a real meta (no runtime): for tests of
    what plugin code can do through meta."""

    def __init__(self) -> None:
        self.store = InMemoryPluginStore()
        self.redis = InMemoryRedis()
        self.jobs = InMemoryJobQueue()
        self.logs = PluginLogs()

    def load(self, source: str) -> LoadedConfig:
        instance = compile_plugin({"main.py": source}).instantiate(
            timeout=ONE_CONFIG_TIMEOUT, log=lambda kind, text: None
        )
        row = ConfigRow(
            config_id=7, team_id=2, order=0, config={}, plugin_id=3, plugin_name="hostile", config_schema=[],
            sources={"main.py": source},
        )  # fmt: skip
        meta = Meta(
            config={},
            attachments={},
            storage=Storage(store=self.store, config_id=7),
            cache=Cache(redis=self.redis, config_id=7),
            logger=Logger(write=lambda *entry: self.logs.write(ONE_CONFIG_TARGET, *entry)),
            metrics=Metrics(config_id=7),
            fetch=Fetch(allow_private=False),
            jobs=Jobs(names=frozenset(instance.exports.get("jobs", {})), queue=self.jobs, team_id=2, config_id=7),
            utils=Utils(cursor=Cursor(store=self.store, config_id=7)),
        )
        loaded = LoadedConfig(row, instance, meta, ONE_CONFIG_TARGET, self.logs, ONE_CONFIG_TIMEOUT)
        loaded.ready = True
        return loaded
