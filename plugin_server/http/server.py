"""The HTTP server: health, readiness, metrics, and the read-only query endpoint.

A plain ASGI app served by hypercorn on trio. Routes:
- `GET /_health`: 200 while every consumer loop is alive and making progress, else 503; JSON body.
- `GET /_ready`: 200 once the server started everything and every consumer has partitions.
- `GET /_metrics`: Prometheus text.
- `POST /query`: `Authorization: Bearer <PLUGIN_SERVER_ADMIN_TOKEN>`, body = one SQL query; runs
  it with ClickHouse `readonly=1` and returns JSON lines. It exists so that tools can read an
  embedded (chDB) engine, which only this process may open.
"""

from __future__ import annotations

import functools
import hmac
import json

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, HTTPScope, Scope
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from plugin_server.core import logs
from plugin_server.core.errors import PluginServerError, ServiceUnavailable
from plugin_server.core.health import ConsumerStatus, ServerState
from plugin_server.storage.clickhouse import ClickHouse

log = logs.get(__name__)
MAX_QUERY_BYTES = 1 << 20

Send = ASGISendCallable
Receive = ASGIReceiveCallable


async def _respond(send: Send, status: int, body: bytes, content_type: str = "application/json") -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None  # http.disconnect, the only other event an HTTP request receives
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


class App:
    def __init__(self, *, state: ServerState, clickhouse: ClickHouse | None, admin_token: str) -> None:
        self._state = state
        self._ch = clickhouse
        self._admin_token = admin_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if path == "/_health" and method == "GET":
            healthy, body = self._state.health()
            await _respond(send, 200 if healthy else 503, _json(body))
        elif path == "/_ready" and method == "GET":
            ready = self._state.is_ready()
            await _respond(send, 200 if ready else 503, _json({"status": "ready" if ready else "not ready"}))
        elif path == "/_metrics" and method == "GET":
            await _respond(send, 200, generate_latest(), CONTENT_TYPE_LATEST)
        elif path == "/query":
            await self._query(scope, receive, send)
        else:
            await _respond(send, 404, _json({"error": f"no route {method} {path}"}))

    def _authorized(self, scope: HTTPScope) -> bool:
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"authorization", b"").decode("latin-1")
        expected = f"Bearer {self._admin_token}"
        return bool(self._admin_token) and hmac.compare_digest(given.encode(), expected.encode())

    async def _query(self, scope: HTTPScope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            return await _respond(send, 405, _json({"error": "use POST with the SQL as the body"}))
        if not self._admin_token:
            return await _respond(send, 403, _json({"error": "PLUGIN_SERVER_ADMIN_TOKEN is not set on this server"}))
        if not self._authorized(scope):
            return await _respond(send, 401, _json({"error": "missing or wrong bearer token"}))
        if self._ch is None:
            return await _respond(send, 404, _json({"error": "this process has no ClickHouse connection"}))
        body = await _read_body(receive, MAX_QUERY_BYTES)
        if body is None:
            return await _respond(send, 413, _json({"error": f"query larger than {MAX_QUERY_BYTES} bytes"}))
        try:
            sql = body.decode("utf-8").strip()
        except UnicodeDecodeError:
            return await _respond(send, 400, _json({"error": "query is not UTF-8"}))
        if not sql:
            return await _respond(send, 400, _json({"error": "empty query"}))
        try:
            result = await self._ch.query_json(sql)
        except ServiceUnavailable as exc:
            return await _respond(send, 503, _json({"error": str(exc)}))
        except PluginServerError as exc:
            return await _respond(send, 400, _json({"error": str(exc)}))
        await _respond(send, 200, result, "application/x-ndjson")


async def run_http(
    app: App, *, host: str, port: int, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve until cancelled. `task_status.started(port)` reports the bound port (for port 0)."""
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 1.0

    async def serve_reporting(*, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        await serve(app, config, shutdown_trigger=trio.sleep_forever, task_status=task_status)

    async with trio.open_nursery() as nursery:
        binds = await nursery.start(serve_reporting)
        bound_port = int(binds[0].rsplit(":", 1)[1])
        log.info("http server listening", host=host, port=bound_port)
        task_status.started(bound_port)


class HttpServer:
    """The HTTP capability as an actor: serves `app` until asked to stop; `port` is the bound port
    once started (the settings may ask for 0). It holds no consumer, so it reports no statuses."""

    statuses: tuple[ConsumerStatus, ...] = ()

    def __init__(self, *, app: App, host: str, port: int) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._scope = trio.CancelScope()
        self.port: int | None = None
        self.stopped = trio.Event()

    def request_stop(self) -> None:
        self._scope.cancel()

    async def run(self, *, task_status: trio.TaskStatus[HttpServer] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    self.port = await nursery.start(
                        functools.partial(run_http, self._app, host=self._host, port=self._port)
                    )
                    task_status.started(self)
        finally:
            self.stopped.set()
