"""The plugin runtime on the in-memory stores (plugins, Redis, jobs): chains, meta, errors, timeouts,
reloads. Moved from tests/integration/test_plugins.py: the runtime's logic needs no real Postgres
or Redis, because the contract suites in tests/contract hold the fakes to their behaviour. What
needs real sockets (fetch's address policy, calls stuck outside Python) stays there. Plugin calls
still run in real threads, so a few tests take a fraction of a second of real time."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace

import pytest
import trio

from plugin_server.core.errors import ServiceUnavailable
from plugin_server.plugins import runtime as runtime_module
from plugin_server.storage.plugins import Attachment
from plugin_server.testing.jobs import InMemoryJobQueue
from plugin_server.testing.plugins import InMemoryPluginStore
from plugin_server.testing.redis import InMemoryRedis
from tests.plugins_world import Plugins, events


@pytest.fixture
async def plugins():
    world = Plugins(InMemoryPluginStore(), InMemoryRedis(), team_id=1)
    world.jobs = InMemoryJobQueue()
    with trio.fail_after(30):
        yield world


ADD = """
def process_event(event, meta):
    event["properties"]["seen_by"] = event["properties"].get("seen_by", []) + [meta.config["name"]]
    return event
"""
DROP_ODD = """
def process_event(event, meta):
    return None if event["properties"]["n"] % 2 else event
"""
RAISE_TENTH = """
def process_event(event, meta):
    if event["properties"]["n"] % 10 == 0:
        raise ValueError("no tens: " + str(event["properties"]["n"]))
    event["properties"]["after_raise"] = True
    return event
"""
NAME_SCHEMA = [{"key": "name", "type": "string", "required": True}]


async def test_a_chain_runs_in_order_drops_and_survives_errors(plugins):
    first = await plugins.install(ADD, order=1, config={"name": "first"}, schema=NAME_SCHEMA)
    raising_config = await plugins.install(RAISE_TENTH, order=2)
    await plugins.install(DROP_ODD, order=3)
    await plugins.install(ADD, order=4, config={"name": "last"}, schema=NAME_SCHEMA)
    runtime = plugins.runtime()
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        out = await plugins.process(runtime, events(plugins, 20))
        nursery.cancel_scope.cancel()
    for n, result in enumerate(out):
        if n % 2:
            assert result is None
            continue
        properties = result["properties"]
        assert properties["seen_by"] == ["first", "last"]
        assert properties.get("after_raise", False) is (n % 10 != 0)  # the raising plugin's change is not kept
    errors = [m for m in plugins.messages() if m[1] == "ERROR"]
    assert len(errors) == 2 and all("ValueError: no tens" in m[2] or "no tens" in m[2] for m in errors)
    raising = await plugins.store.error_of(raising_config)  # the config of order 2
    assert "no tens: 10" in raising["message"] and raising["event"]["uuid"].endswith("000000000010")
    assert await plugins.store.error_of(first) is None


async def test_changes_to_team_id_or_uuid_are_refused_and_the_event_keeps_its_value(plugins):
    config_id = await plugins.install(
        "def process_event(event, meta):\n    event['team_id'] = 999\n    event['event'] = 'changed'\n    return event\n"
    )
    runtime = plugins.runtime()
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        (out,) = await plugins.process(runtime, events(plugins, 1))
        nursery.cancel_scope.cancel()
    assert out["event"] == "$pageview" and out["team_id"] == plugins.team_id
    assert any("team_id" in m[2] for m in plugins.messages(config_id))


async def test_invalid_configs_and_policy_violations_are_reported_not_loaded(plugins):
    bad_config = await plugins.install(ADD, config={}, schema=NAME_SCHEMA)
    bad_code = await plugins.install("import os\ndef process_event(event, meta):\n    return event\n")
    runtime = plugins.runtime()
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        (out,) = await plugins.process(runtime, events(plugins, 1))
        nursery.cancel_scope.cancel()
    assert out == events(plugins, 1)[0]  # neither ran
    assert "'name' is required" in (await plugins.store.error_of(bad_config))["message"]
    assert "main.py:1: import of 'os' is not allowed" in (await plugins.store.error_of(bad_code))["message"]
    assert any("could not load" in m[2] for m in plugins.messages(bad_code))


STORAGE = """
def process_event(event, meta):
    seen = meta.storage.get("seen", 0)
    meta.storage.set("seen", seen + 1)
    event["properties"]["seen"] = seen
    event["properties"]["other"] = meta.storage.get("mine", "nothing")
    meta.cache.set("last", event["properties"]["n"], 60)
    event["properties"]["hits"] = meta.cache.incr("hits")
    meta.cache.lpush("ns", [event["properties"]["n"]])
    event["properties"]["ns"] = meta.cache.lrange("ns", 0, -1)
    event["properties"]["cursor"] = meta.utils.cursor.increment("c", 5)
    meta.metrics.increment("events")
    meta.logger.info("saw", event["properties"]["n"])
    print("printed", event["properties"]["n"])
    return event
"""


async def test_meta_storage_cache_cursor_logs_are_namespaced_per_config(plugins):
    a = await plugins.install(STORAGE, order=1)
    b = await plugins.install(STORAGE, order=2)
    await plugins.store.storage_set(b, "mine", json.dumps("b's"))
    runtime = plugins.runtime()
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        out = await plugins.process(runtime, events(plugins, 3))
        nursery.cancel_scope.cancel()
    # b runs after a and overwrites a's values: b's view is what the event carries
    assert [e["properties"]["seen"] for e in out] == [0, 1, 2]
    assert [e["properties"]["other"] for e in out] == ["b's"] * 3
    assert [e["properties"]["hits"] for e in out] == [1, 2, 3]
    assert out[-1]["properties"]["ns"] == ["2", "1", "0"] and out[-1]["properties"]["cursor"] == 15
    assert json.loads(await plugins.store.storage_get(a, "seen")) == 3
    assert await plugins.store.storage_get(a, "mine") is None
    assert await plugins.redis.get(f"@plugin-config/{a}/last") == b"2"
    messages = plugins.messages(a)
    assert ("PLUGIN", "INFO", "saw 0") in messages and ("CONSOLE", "LOG", "printed 0") in messages


async def test_a_plugin_that_times_out_repeatedly_is_disabled(plugins):
    config_id = await plugins.install("def process_event(event, meta):\n    while True:\n        pass\n")
    runtime = plugins.runtime(task_timeout=0.2)
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        out = await plugins.process(runtime, events(plugins, 5))
        nursery.cancel_scope.cancel()
    assert out == events(plugins, 5)  # every event went on unchanged
    assert not await plugins.enabled(config_id)
    assert "consecutive timeouts" in (await plugins.store.error_of(config_id))["message"]
    timeouts = [
        m for m in plugins.messages(config_id) if m[2].startswith("process_event failed") and "timed out" in m[2]
    ]
    assert len(timeouts) == 3  # disabled after the third: the last two events did not wait


class FailingStore:
    """A PluginStore whose storage reads fail as a Postgres outage would."""

    def __init__(self, store):
        self._store = store

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def storage_get(self, config_id, key):
        raise ServiceUnavailable("postgres", "connection lost")


async def test_a_service_outage_inside_meta_fails_the_batch_as_retryable(plugins):
    await plugins.install(
        "def process_event(event, meta):\n    try:\n        meta.storage.get('x')\n    except Exception:\n        pass\n    return event\n"
    )
    runtime = plugins.runtime()
    runtime._store = FailingStore(plugins.store)  # before run: the configs' meta is built on it
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        with pytest.raises(ServiceUnavailable):
            await plugins.process(runtime, events(plugins, 1))
        nursery.cancel_scope.cancel()


SETUP_TEARDOWN = """
def setup_plugin(meta):
    meta.global_["version"] = "VERSION"
    meta.storage.set("setups", meta.storage.get("setups", 0) + 1)

def teardown_plugin(meta):
    meta.storage.set("torn_down", meta.global_["version"])

def process_event(event, meta):
    event["properties"]["version"] = meta.global_["version"]
    return event
"""


async def test_reload_on_the_channel_swaps_versions_and_tears_down_the_old(plugins):
    config_id = await plugins.install(SETUP_TEARDOWN.replace("VERSION", "v1"))
    plugin_id = await plugins.plugin_id_of(config_id)
    runtime = plugins.runtime()
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        (out,) = await plugins.process(runtime, events(plugins, 1))
        assert out["properties"]["version"] == "v1"
        await plugins.store.update_sources(plugin_id, {"main.py": SETUP_TEARDOWN.replace("VERSION", "v2")})
        await plugins.redis.publish(f"reload-{plugins.team_id}", b"reload")
        with trio.fail_after(10):
            while True:
                (out,) = await plugins.process(runtime, events(plugins, 1))
                if out["properties"]["version"] == "v2":
                    break
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    assert json.loads(await plugins.store.storage_get(config_id, "torn_down")) == "v2"  # shutdown tore down v2
    assert json.loads(await plugins.store.storage_get(config_id, "setups")) == 2


async def test_a_batch_in_flight_keeps_its_generation_through_a_reload(plugins):
    config_id = await plugins.install(SETUP_TEARDOWN.replace("VERSION", "old"))
    plugin_id = await plugins.plugin_id_of(config_id)
    runtime = plugins.runtime()
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        async with runtime.pinned() as generation:
            await plugins.store.update_sources(plugin_id, {"main.py": SETUP_TEARDOWN.replace("VERSION", "new")})
            nursery.start_soon(runtime.reload)
            with trio.fail_after(10):  # until the reload has installed the new generation ...
                while True:
                    async with runtime.pinned() as latest:
                        if latest is not generation:
                            break
                    await trio.sleep(0.01)
            await trio.sleep(0.05)  # ... and is waiting for this batch: nothing of the old one is torn down
            assert await plugins.store.storage_get(config_id, "torn_down") is None
            out = await runtime.process_events(generation.chains[plugins.team_id], events(plugins, 1))
            assert out[0]["properties"]["version"] == "old"
        with trio.fail_after(10):
            while json.loads(await plugins.store.storage_get(config_id, "torn_down") or "null") != "old":
                await trio.sleep(0.05)
        (out,) = await plugins.process(runtime, events(plugins, 1))
        assert out["properties"]["version"] == "new"
        nursery.cancel_scope.cancel()


async def test_setup_failures_are_retried_with_backoff(plugins, monkeypatch):
    # real Postgres and threads: real time, so a quicker first delay (exact delays: tests/unit/plugins/test_runtime_timers.py)
    monkeypatch.setattr(runtime_module, "PLUGIN_SETUP_RETRY", replace(runtime_module.PLUGIN_SETUP_RETRY, initial=0.05))
    config_id = await plugins.install(
        "def setup_plugin(meta):\n    if meta.utils.cursor.increment('tries') < 3:\n        raise RuntimeError('not yet')\n"
        "def process_event(event, meta):\n    event['properties']['ready'] = True\n    return event\n"
    )
    runtime = plugins.runtime()
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        (out,) = await plugins.process(runtime, events(plugins, 1))
        assert "ready" not in out["properties"]  # not set up yet: skipped
        with trio.fail_after(15):
            while "ready" not in (await plugins.process(runtime, events(plugins, 1)))[0]["properties"]:
                await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    messages = [m[2] for m in plugins.messages(config_id)]
    assert sum("setup_plugin failed" in m for m in messages) == 2
    assert await plugins.store.error_of(config_id) is None  # cleared by the successful setup


ON_EVENT = """
def on_event(event, meta):
    meta.utils.cursor.increment("seen")
    if event["properties"].get("n") == 3:
        raise ValueError("on_event dislikes 3")
"""
EXPORT = """
def export_events(events, meta):
    attempt = meta.utils.cursor.increment("attempts")
    if meta.config.get("mode") == "retry":
        raise RetryError("endpoint busy")
    if meta.config.get("mode") == "fail":
        raise ValueError("bad request")
    meta.utils.cursor.increment("exported", len(events))
"""


def processed(plugins: Plugins, count: int) -> list[dict]:
    return [
        {"uuid": f"u{n}", "team_id": plugins.team_id, "event": "$pageview", "distinct_id": "d", "properties": {"n": n}}
        for n in range(count)
    ]


async def test_on_event_and_export_events_see_written_events(plugins):
    on_event = await plugins.install(ON_EVENT)
    schema = [{"key": "mode"}, {"key": "exportEventsBufferBytes"}]
    exporter = await plugins.install(EXPORT, config={"exportEventsBufferBytes": "200"}, schema=schema)
    retrying = await plugins.install(EXPORT, config={"mode": "retry"}, schema=schema)
    failing = await plugins.install(EXPORT, config={"mode": "fail"}, schema=schema)
    runtime = plugins.runtime()
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        assert runtime.any_async() and runtime.wants_async(plugins.team_id) and not runtime.wants_async(-1)
        report = await runtime.run_async(processed(plugins, 6), plugins.jobs)
        nursery.cancel_scope.cancel()

    async def cursor(config_id: int, key: str) -> int:
        return int(await plugins.store.storage_get(config_id, key) or 0)

    assert await cursor(on_event, "seen") == 6
    assert "on_event dislikes 3" in (await plugins.store.error_of(on_event))["message"]
    assert await cursor(exporter, "exported") == 6 and await cursor(exporter, "attempts") > 1  # split by bytes
    assert report.delivered == 6 and report.failed == 6
    assert "bad request" in (await plugins.store.error_of(failing))["message"]
    (job,) = [j for j in plugins.jobs.jobs if j.payload["plugin_config_id"] == retrying]
    delay = job.run_at - dt.datetime.now(dt.UTC)
    assert job.task_identifier == "plugin_job" and job.payload["type"] == "export_events_with_retry"
    assert len(job.payload["payload"]["events"]) == 6 and job.payload["payload"]["retries_so_far"] == 1
    assert 4 < delay.total_seconds() <= 6
    assert any("asked for a retry" in m[2] for m in plugins.messages(retrying))


async def test_attachments_reach_their_config_only(plugins):
    source = (
        "def process_event(event, meta):\n"
        "    cert = meta.attachments.get('cert')\n"
        "    event['properties']['cert'] = None if cert is None else [cert['file_name'], cert['contents'].decode()]\n"
        "    return event\n"
    )
    _, with_cert = await plugins.store.install(
        team_id=plugins.team_id, name="a", description="", url="", config_schema=[{"key": "cert", "type": "attachment"}],
        capabilities={}, sources={"main.py": source}, config={}, order=1,
        attachments=[Attachment("cert", "text/plain", "cert.pem", b"SECRET")],
    )  # fmt: skip
    await plugins.install(
        source.replace("'cert'] = None", "'cert2'] = None").replace("properties']['cert'", "properties']['cert2'"),
        order=2,
    )
    runtime = plugins.runtime()
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        (out,) = await plugins.process(runtime, events(plugins, 1))
        nursery.cancel_scope.cancel()
    assert out["properties"]["cert"] == ["cert.pem", "SECRET"]
    assert out["properties"]["cert2"] is None  # the other config has no attachments
    assert with_cert > 0
