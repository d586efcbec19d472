"""Values Redis cannot take reach the plugin as a MetaError it may handle: never a driver exception
(the host's object, with its traceback), never an outage that would retry the batch for ever."""

from __future__ import annotations

import pytest
import trio

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
from plugin_server.storage.plugins import ConfigRow
from plugin_server.testing.plugins import InMemoryPluginStore
from plugin_server.testing.redis import InMemoryRedis
from vm.sandbox import compile_plugin

TIMEOUT = 2.0
EVENT = {"uuid": "u-1", "team_id": 2, "event": "pageview", "distinct_id": "d", "properties": {}, "ip": None}
SOURCE = """
def process_event(event, meta):
    try:
        meta.cache.lpush("k", VALUE)
        event["properties"]["outcome"] = "stored"
    except Exception as error:
        event["properties"]["outcome"] = "refused: " + str(error)
    return event
"""


def load(source: str, redis: InMemoryRedis) -> LoadedConfig:
    instance = compile_plugin({"main.py": source}).instantiate(timeout=TIMEOUT, log=lambda kind, text: None)
    row = ConfigRow(
        config_id=7, team_id=2, order=0, config={}, plugin_id=3, plugin_name="cache", config_schema=[],
        sources={"main.py": source},
    )  # fmt: skip
    store = InMemoryPluginStore()
    meta = Meta(
        config={},
        attachments={},
        storage=Storage(store=store, config_id=7),
        cache=Cache(redis=redis, config_id=7),
        logger=Logger(write=lambda *entry: None),
        metrics=Metrics(config_id=7),
        fetch=Fetch(allow_private=False),
        jobs=Jobs(names=frozenset(), queue=None, team_id=2, config_id=7),
        utils=Utils(cursor=Cursor(store=store, config_id=7)),
    )
    loaded = LoadedConfig(row, instance, meta, LogTarget(2, 3, 7, "instance"), PluginLogs(), TIMEOUT)
    loaded.ready = True
    return loaded


@pytest.mark.parametrize(
    ("value", "outcome"),
    [
        ('"ok"', "stored"),
        # a lone surrogate, which redis-py cannot encode: meta's own message ("cache: ..."), not the codec's
        ('"\\ud800"', "refused: cache: "),
        ('["a", "\\udfff", "b"]', "refused: cache: "),
    ],
    ids=["plain", "lone-surrogate", "surrogate-in-list"],
)
async def test_a_value_redis_cannot_take_is_a_meta_error(value: str, outcome: str):
    redis = InMemoryRedis()
    config = load(SOURCE.replace("VALUE", value), redis)
    with trio.fail_after(10):
        result = await trio.to_thread.run_sync(config.call, config.instance.exports["process_event"], EVENT)
    assert isinstance(result, dict) and result["properties"]["outcome"].startswith(outcome)
    stored = await redis.command("llen", "@plugin-config/7/k")
    assert stored == (1 if outcome == "stored" else 0)  # nothing half-written
