"""Values Redis cannot take reach the plugin as a MetaError it may handle: never a driver exception
(the host's object, with its traceback), never an outage that would retry the batch for ever."""

from __future__ import annotations

import pytest
import trio

from tests.plugins_world import OneConfig

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
    host = OneConfig()
    config = host.load(SOURCE.replace("VALUE", value))
    with trio.fail_after(10):
        result = await trio.to_thread.run_sync(config.call, config.instance.exports["process_event"], EVENT)
    assert isinstance(result, dict) and result["properties"]["outcome"].startswith(outcome)
    stored = await host.redis.command("llen", "@plugin-config/7/k")
    assert stored == (1 if outcome == "stored" else 0)  # nothing half-written
