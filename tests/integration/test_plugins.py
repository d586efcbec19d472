"""The plugin runtime against real Postgres, Redis and sockets: what needs them.

Fetch's address policy talks to a real local server, and calls stuck outside Python block a real
thread in a socket read. The runtime's other logic (chains, meta, errors, timeouts, reloads) runs
on the in-memory stores in tests/unit/plugins/test_runtime.py; the stores are held to the real
services' behaviour by the suites in tests/contract.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import trio

from plugin_server.plugins import runtime as runtime_module
from plugin_server.storage.plugins import PluginStore
from plugin_server.storage.postgres import Postgres
from plugin_server.storage.redis import Redis
from tests import plugins_world
from tests.plugins_world import event, events


class Plugins(plugins_world.Plugins):
    """Installs plugins for one team in Postgres and runs a runtime over them."""

    def __init__(self, pg: Postgres, redis: Redis, team_id: int) -> None:
        super().__init__(PluginStore(pg=pg), redis, team_id)
        self.pg = pg


@pytest.fixture
async def plugins(pg, redis, team):
    world = Plugins(pg, redis, team["id"])
    yield world
    await pg.execute("UPDATE posthog_pluginconfig SET enabled = false WHERE team_id = $1", team["id"])


def serve_once(status: int = 200, body: bytes = b'{"ok": true}'):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


FETCH = """
def process_event(event, meta):
    try:
        response = meta.fetch(event["properties"]["url"])
        event["properties"]["fetched"] = response["status"]
        event["properties"]["body"] = response["text"]
    except Exception as error:
        event["properties"]["fetch_error"] = str(error)
    return event
"""


@pytest.mark.parametrize("allow_private", [False, True])
async def test_fetch_cannot_reach_private_addresses_unless_allowed(plugins, allow_private):
    server = serve_once()
    try:
        await plugins.install(FETCH)
        runtime = plugins.runtime(allow_private_fetch=allow_private)
        urls = [
            f"http://127.0.0.1:{server.server_port}/x",
            f"http://localhost:{server.server_port}/",
            "file:///etc/passwd",
        ]
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime.run)
            out = await plugins.process(
                runtime, [event(i) | {"team_id": plugins.team_id, "properties": {"url": u}} for i, u in enumerate(urls)]
            )
            nursery.cancel_scope.cancel()
    finally:
        server.shutdown()
        server.server_close()
    first, second, third = (e["properties"] for e in out)
    if allow_private:
        assert first["fetched"] == 200 and json.loads(first["body"]) == {"ok": True} and second["fetched"] == 200
    else:
        assert "not a public address" in first["fetch_error"] and "not a public address" in second["fetch_error"]
    assert "only http(s) URLs" in third["fetch_error"]


@pytest.fixture
def silent_url(monkeypatch):
    """A URL whose server accepts connections and never answers; stuck calls declared quickly."""
    monkeypatch.setattr(runtime_module, "STUCK_GRACE_SECONDS", 0.3)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        yield f"http://127.0.0.1:{silent.getsockname()[1]}/"


async def test_a_call_stuck_outside_python_is_abandoned_and_its_config_disabled(plugins, silent_url):
    url = silent_url
    config_id = await plugins.install(
        "def process_event(event, meta):\n    meta.fetch(event['properties']['url'], timeout=30)\n    return event\n"
    )
    runtime = plugins.runtime(task_timeout=0.2, allow_private_fetch=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        with trio.fail_after(10):
            out = await plugins.process(runtime, [event(1) | {"team_id": plugins.team_id, "properties": {"url": url}}])
        nursery.cancel_scope.cancel()
    assert out[0]["properties"] == {"url": url}
    assert runtime.abandoned_threads == 1
    assert "did not return" in (await plugins.store.error_of(config_id))["message"]


async def test_a_setup_stuck_outside_python_disables_its_config_not_the_server(plugins, silent_url):
    config_id = await plugins.install(
        f"def setup_plugin(meta):\n    meta.fetch('{silent_url}', timeout=30)\n"
        "def process_event(event, meta):\n    event['properties']['ran'] = True\n    return event\n"
    )
    runtime = plugins.runtime(task_timeout=0.2, allow_private_fetch=True)
    async with trio.open_nursery() as nursery:
        with trio.fail_after(10):
            await nursery.start(runtime.run)
        (out,) = await plugins.process(runtime, events(plugins, 1))
        nursery.cancel_scope.cancel()
    assert "ran" not in out["properties"]
    assert runtime.abandoned_threads == 1
    assert not await plugins.pg.fetchval("SELECT enabled FROM posthog_pluginconfig WHERE id = $1", config_id)
