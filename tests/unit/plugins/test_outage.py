"""A service outage met inside meta fails the plugin call as retryable, whatever the plugin does
with it (plugin_server/plugins/meta/outage.py), and nothing more goes through meta in that call.

The hostile corpus's `attack_meta_outage_*.py` files run here with a store that fails as a
Postgres outage would (tests/unit/vm/test_hostile.py runs them too, with no meta)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from plugin_server.core.errors import ServiceUnavailable, StorageError
from plugin_server.plugins.chain import ChainReport, Progress, run_chain
from plugin_server.plugins.hooks import AsyncReport, run_export
from plugin_server.plugins.loaded import LoadedConfig
from plugin_server.plugins.logs import LogTarget, PluginLogs
from plugin_server.plugins.meta import Meta, MetaError
from plugin_server.plugins.meta.cache import Cache
from plugin_server.plugins.meta.fetch import Fetch
from plugin_server.plugins.meta.jobs import Jobs
from plugin_server.plugins.meta.logger import Logger
from plugin_server.plugins.meta.metrics import Metrics
from plugin_server.plugins.meta.storage import Storage
from plugin_server.plugins.meta.utils import Cursor, Utils
from plugin_server.plugins.runtime import PluginRuntime
from plugin_server.storage.plugins import ConfigRow
from vm.sandbox import compile_plugin

CORPUS = Path(__file__).parents[2] / "hostile"
ATTACKS = sorted(CORPUS.glob("attack_meta_outage_*.py"))
TIMEOUT = 2.0
EVENT = {"uuid": "u-1", "team_id": 2, "event": "pageview", "distinct_id": "d", "properties": {}, "ip": None}


class Services:
    """Postgres storage and Redis for one config: reads of the key "seen" fail with `failure`
    (an outage by default); every request is recorded; other keys hold nothing."""

    def __init__(self, failure: Exception | None = None) -> None:
        self.failure = failure if failure is not None else ServiceUnavailable("postgres", "connection lost")
        self.requests: list[tuple[str, str]] = []
        self.errors: dict[int, dict | None] = {}

    async def storage_get(self, config_id: int, key: str) -> str | None:
        self.requests.append(("storage_get", key))
        if key == "seen" and self.failure is not None:
            raise self.failure
        return None

    async def storage_set(self, config_id: int, key: str, value: str) -> None:
        self.requests.append(("storage_set", key))

    async def storage_increment(self, config_id: int, key: str, by: int) -> int:
        self.requests.append(("storage_increment", key))
        return by

    async def set(self, key: str, value: bytes, *, ttl_seconds: float | None = None) -> None:
        self.requests.append(("cache_set", key))

    async def set_error(self, config_id: int, error: dict | None) -> None:
        self.errors[config_id] = error


def load(source: str, services: Services, written: list | None = None) -> LoadedConfig:
    instance = compile_plugin({"main.py": source}).instantiate(timeout=TIMEOUT, log=lambda kind, text: None)
    row = ConfigRow(
        config_id=7, team_id=2, order=0, config={"label": "x"}, plugin_id=3, plugin_name="outage",
        config_schema=[], sources={"main.py": source},
    )  # fmt: skip
    log = written if written is not None else []
    meta = Meta(
        config=row.config,
        attachments={},
        storage=Storage(store=services, config_id=7),
        cache=Cache(redis=services, config_id=7),
        logger=Logger(write=lambda *entry: log.append(entry)),
        metrics=Metrics(config_id=7),
        fetch=Fetch(allow_private=False),
        jobs=Jobs(names=frozenset(), queue=None, team_id=2, config_id=7),
        utils=Utils(cursor=Cursor(store=services, config_id=7)),
    )
    loaded = LoadedConfig(row, instance, meta, LogTarget(2, 3, 7, "instance"), PluginLogs(), TIMEOUT)
    loaded.ready = True
    return loaded


async def call(config: LoadedConfig, function: str = "process_event", payload: object = EVENT) -> object:
    with trio.fail_after(10):
        return await trio.to_thread.run_sync(config.call, config.instance.exports[function], payload)


@pytest.mark.parametrize("path", ATTACKS, ids=[p.stem.removeprefix("attack_") for p in ATTACKS])
async def test_a_plugin_cannot_swallow_an_outage(path: Path):
    services = Services()
    with pytest.raises(ServiceUnavailable, match="connection lost"):
        await call(load(path.read_text(), services))
    assert services.requests == [("storage_get", "seen")]  # nothing through meta after the outage


async def test_an_outage_the_plugin_lets_through_fails_the_call_the_same_way():
    services = Services()
    config = load("def process_event(event, meta):\n    meta.storage.get('seen')\n    return event\n", services)
    with pytest.raises(ServiceUnavailable):
        await call(config)


async def test_the_plugin_sees_a_message_only():
    written: list = []
    source = """
def process_event(event, meta):
    try:
        meta.storage.get("seen")
    except BaseException as caught:
        meta.logger.info(str(caught))
    return event
"""
    with pytest.raises(ServiceUnavailable):
        await call(load(source, Services(), written))
    assert written == [("PLUGIN", "INFO", "storage: postgres unavailable: connection lost")]


async def test_a_refused_request_stays_an_error_the_plugin_may_handle():
    services = Services(StorageError("postgres", "value too long"))
    source = """
def process_event(event, meta):
    try:
        meta.storage.get("seen")
    except Exception as error:
        event["properties"]["error"] = str(error)
    meta.storage.set("after", 1)
    return event
"""
    out = await call(load(source, services))
    assert out["properties"] == {"error": "storage: postgres error: value too long"}
    assert services.requests == [("storage_get", "seen"), ("storage_set", "after")]


async def test_the_outage_belongs_to_its_call_only():
    services = Services()
    config = load("def process_event(event, meta):\n    meta.storage.get('seen')\n    return event\n", services)
    with pytest.raises(ServiceUnavailable):
        await call(config)
    services.failure = None  # Postgres is back: the next call on the same thread and config works
    assert await call(config) == EVENT


async def test_outside_a_plugin_call_an_outage_is_a_meta_error():
    config = load("def process_event(event, meta):\n    return event\n", Services())
    with pytest.raises(MetaError, match="postgres unavailable"):
        await trio.to_thread.run_sync(config.meta.storage.get, "seen")


async def test_the_chain_stops_at_an_outage_without_recording_a_plugin_error():
    source = "def process_event(event, meta):\n    try:\n        meta.storage.get('seen')\n    except:\n        pass\n"
    config = load(source + "    return event\n", Services())
    report = ChainReport()
    with pytest.raises(ServiceUnavailable):
        await trio.to_thread.run_sync(run_chain, [config], [EVENT, EVENT], Progress(), report)
    assert report == ChainReport()
    assert config.consecutive_timeouts == 0 and not config.disabled


async def test_an_export_that_met_an_outage_is_not_counted_failed_or_retried_by_itself():
    source = "def export_events(events, meta):\n    meta.utils.cursor.increment('n')\n    meta.storage.get('seen')\n"
    config = load(source, Services())
    report = AsyncReport()
    with pytest.raises(ServiceUnavailable):
        await trio.to_thread.run_sync(run_export, config, [EVENT], Progress(), report)
    assert (report.delivered, report.failed, report.retries, report.errors) == (0, 0, [], {})


async def test_an_outage_in_setup_plugin_is_a_failed_setup_retried_later():
    services = Services()
    source = "def setup_plugin(meta):\n    try:\n        meta.storage.get('seen')\n    except:\n        pass\n"
    config = load(source, services)
    config.ready = False
    runtime = PluginRuntime(store=services, redis=None, logs=PluginLogs(), task_timeout=TIMEOUT, threads=2)
    await runtime._setup(config)
    assert not config.ready and not config.disabled and config.setup_attempts == 1
    # retried on the setup schedule: 3 s after it failed (the exact instants: test_runtime_timers.py)
    assert trio.current_time() < config.next_setup <= trio.current_time() + 3.0
    assert any(b"retrying in 3 s" in row.line for row in config.logs.drain())
    assert services.errors[7]["name"] == "ServiceUnavailable"
