"""`meta`: what a plugin config's code can reach of the world (REFERENCE.md 6.9), in Python terms.

Plugin code runs in worker threads (plugin_server/plugins/runtime.py); meta's I/O goes back to trio with
`trio.from_thread.run`, so the event loop never blocks on a plugin. Everything reachable from a
`Meta` is reachable by the plugin, so:
- every member is an object of this module whose host references are underscore names (which
  the sandbox refuses), and every value handed out is plain data or a copy;
- keys are namespaced by plugin config: storage rows carry the config id, Redis keys start with
  `@plugin-config/<id>/`, attachments are the config's own; no config can name another's;
- failures reach the plugin as `MetaError` with a message only (an exception object carries what
  it references into plugin code). A failure of a backing service (Postgres, Redis down) is also
  remembered for the calling thread (`take_host_failure`): the runtime then fails the batch as
  retryable instead of letting the event continue without the plugin's work.

`meta.global_` is PostHog's `meta.global` (`global` is a Python keyword).
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import json
import socket
import threading
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import trio
from prometheus_client import Gauge

from plugin_server.core.errors import PluginServerError
from plugin_server.storage.jobs import JobQueue
from plugin_server.storage.plugins import Attachment, PluginStore
from plugin_server.storage.redis import Redis

# Sizes a plugin may not exceed through meta (each one a guard against a bomb through the host).
MAX_KEY_CHARS = 200  # posthog_pluginstorage.key is varchar(200)
MAX_STORED_CHARS = 1_000_000  # one storage or cache value, serialized
MAX_LIST_PUSH = 1_000  # items in one cache.lpush (PostHog's limit)
MAX_FETCH_BYTES = 5 * 1024 * 1024  # of a fetched response body
FETCH_TIMEOUT_SECONDS = 10.0
MAX_REDIRECTS = 5
MAX_LOG_CHARS = 50_000  # PostHog drops longer log messages; we truncate and say so
MAX_JOB_DELAY = dt.timedelta(days=365)

PLUGIN_METRIC = Gauge(
    "plugin_metric",
    "Values plugins report through meta.metrics.",
    ["plugin_config_id", "name"],
)


class MetaError(Exception):
    """What a plugin sees when meta cannot do what it asked: a message, nothing else."""


_failure = threading.local()


def take_host_failure() -> PluginServerError | None:
    """The retryable service failure a meta call met in this thread since the last take, if any."""
    failure = getattr(_failure, "error", None)
    _failure.error = None
    return failure


class _Bridge:
    """Runs host coroutines from a plugin's worker thread and turns failures into MetaError."""

    __slots__ = ("_what",)

    def __init__(self, what: str) -> None:
        self._what = what

    def run(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        try:
            return trio.from_thread.run(functools.partial(fn, *args, **kwargs))
        except PluginServerError as exc:
            if exc.retryable:
                _failure.error = exc
            raise MetaError(f"{self._what}: {exc}") from None
        except trio.RunFinishedError:
            raise MetaError(f"{self._what}: the server is stopping") from None


def _key(key: Any) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS:
        raise MetaError(f"a key must be a non-empty string of at most {MAX_KEY_CHARS} characters")
    return key


def _serialize(value: Any) -> str:
    try:
        text = json.dumps(value, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise MetaError(f"value is not JSON: {exc}") from None
    if len(text) > MAX_STORED_CHARS:
        raise MetaError(f"value is larger than {MAX_STORED_CHARS} characters as JSON")
    return text


class Storage:
    """`meta.storage`: JSON values in Postgres (posthog_pluginstorage), per plugin config."""

    __slots__ = ("_bridge", "_config_id", "_store")

    def __init__(self, *, store: PluginStore, config_id: int) -> None:
        self._store = store
        self._config_id = config_id
        self._bridge = _Bridge("storage")

    def get(self, key: str, default: Any = None) -> Any:
        raw = self._bridge.run(self._store.storage_get, self._config_id, _key(key))
        return default if raw is None else json.loads(raw)

    def set(self, key: str, value: Any) -> None:
        if value is None:  # PostHog: setting undefined deletes
            self.delete(key)
            return
        self._bridge.run(self._store.storage_set, self._config_id, _key(key), _serialize(value))

    def delete(self, key: str) -> None:
        self._bridge.run(self._store.storage_del, self._config_id, _key(key))

    # PostHog's name for delete
    def del_(self, key: str) -> None:
        self.delete(key)


class Cursor:
    """`meta.utils.cursor`: atomic counters kept in storage."""

    __slots__ = ("_bridge", "_config_id", "_store")

    def __init__(self, *, store: PluginStore, config_id: int) -> None:
        self._store = store
        self._config_id = config_id
        self._bridge = _Bridge("cursor")

    def init(self, key: str, initial: int = 0) -> None:
        self._bridge.run(self._store.storage_init, self._config_id, _key(key), int(initial))

    def increment(self, key: str, by: int = 1) -> int:
        return self._bridge.run(self._store.storage_increment, self._config_id, _key(key), int(by))


class Utils:
    __slots__ = ("cursor",)

    def __init__(self, *, cursor: Cursor) -> None:
        self.cursor = cursor


class Cache:
    """`meta.cache`: Redis, keys namespaced per plugin config (PostHog namespaced per plugin and
    team; a config is the narrower boundary)."""

    __slots__ = ("_bridge", "_prefix", "_redis")

    def __init__(self, *, redis: Redis, config_id: int) -> None:
        self._redis = redis
        self._prefix = f"@plugin-config/{config_id}/"
        self._bridge = _Bridge("cache")

    def _k(self, key: str) -> str:
        return self._prefix + _key(key)

    def set(
        self,
        key: str,
        value: Any,
        ttl_seconds: float | None = None,
        json_serialize: bool = True,
    ) -> None:
        text = _serialize(value) if json_serialize else str(value)
        if len(text) > MAX_STORED_CHARS:
            raise MetaError(f"value is larger than {MAX_STORED_CHARS} characters")
        if ttl_seconds is not None and (not isinstance(ttl_seconds, int | float) or ttl_seconds <= 0):
            raise MetaError("ttl_seconds must be a positive number")
        self._bridge.run(self._redis.set, self._k(key), text.encode(), ttl_seconds=ttl_seconds)

    def get(self, key: str, default: Any = None, json_serialize: bool = True) -> Any:
        raw = self._bridge.run(self._redis.get, self._k(key))
        if raw is None:
            return default
        text = raw.decode("utf-8", errors="replace")
        return json.loads(text) if json_serialize else text

    def incr(self, key: str) -> int:
        return self._bridge.run(self._redis.command, "incr", self._k(key))

    def expire(self, key: str, ttl_seconds: float) -> bool:
        return bool(
            self._bridge.run(
                self._redis.command,
                "pexpire",
                self._k(key),
                int(float(ttl_seconds) * 1000),
            )
        )

    def lpush(self, key: str, elements: Any) -> int:
        items = elements if isinstance(elements, list) else [elements]
        if len(items) > MAX_LIST_PUSH:
            raise MetaError(f"at most {MAX_LIST_PUSH} elements per lpush")
        texts = [e if isinstance(e, str) else _serialize(e) for e in items]
        return self._bridge.run(self._redis.command, "lpush", self._k(key), *texts)

    def lrange(self, key: str, start: int, end: int) -> list[str]:
        if not isinstance(start, int) or not isinstance(end, int):
            raise MetaError("lrange needs integer start and end")
        raw = self._bridge.run(self._redis.command, "lrange", self._k(key), start, end)
        return [r.decode("utf-8", errors="replace") for r in raw]

    def llen(self, key: str) -> int:
        return self._bridge.run(self._redis.command, "llen", self._k(key))

    def lpop(self, key: str, count: int = 1) -> list[str]:
        raw = self._bridge.run(self._redis.command, "lpop", self._k(key), int(count))
        return [r.decode("utf-8", errors="replace") for r in raw or []]

    def lrem(self, key: str, count: int, element: str) -> int:
        return self._bridge.run(self._redis.command, "lrem", self._k(key), int(count), element)


class Logger:
    """`meta.logger`: plugin log entries (source PLUGIN); `print` goes to CONSOLE entries."""

    __slots__ = ("_write",)

    def __init__(self, write: Callable[[str, str, str], None]) -> None:
        self._write = write  # (source, type, message)

    def _emit(self, kind: str, parts: tuple[Any, ...]) -> None:
        message = " ".join(p if isinstance(p, str) else _display(p) for p in parts)
        self._write("PLUGIN", kind, message)

    def debug(self, *parts: Any) -> None:
        self._emit("DEBUG", parts)

    def info(self, *parts: Any) -> None:
        self._emit("INFO", parts)

    def log(self, *parts: Any) -> None:
        self._emit("LOG", parts)

    def warn(self, *parts: Any) -> None:
        self._emit("WARN", parts)

    def error(self, *parts: Any) -> None:
        self._emit("ERROR", parts)


def _display(value: Any) -> str:
    try:
        return json.dumps(value, default=lambda v: f"<{type(v).__name__}>")[:MAX_LOG_CHARS]
    except (TypeError, ValueError, RecursionError):
        return f"<{type(value).__name__}>"


class Metrics:
    """`meta.metrics`: numbers a plugin reports, exported as the `plugin_metric` gauge."""

    __slots__ = ("_config_id", "_values")

    def __init__(self, *, config_id: int) -> None:
        self._config_id = str(config_id)
        self._values: dict[str, float] = {}

    def _update(self, name: str, value: Any, combine: Callable[[float, float], float]) -> None:
        if not isinstance(name, str) or not name.isidentifier() or len(name) > 100:
            raise MetaError("a metric name is a name of at most 100 characters")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MetaError("a metric value is a number")
        current = self._values.get(name)
        new = float(value) if current is None else combine(current, float(value))
        self._values[name] = new
        PLUGIN_METRIC.labels(self._config_id, name).set(new)

    def increment(self, name: str, value: float = 1) -> None:
        self._update(name, value, lambda a, b: a + b)

    def max(self, name: str, value: float) -> None:
        self._update(name, value, max)

    def min(self, name: str, value: float) -> None:
        self._update(name, value, min)


class Fetch:
    """`meta.fetch(url, method="GET", headers=None, body=None, timeout=10)` -> a dict
    `{status, ok, headers, text}`. Only http(s); redirects are followed (at most 5) and every hop
    is checked; the body is capped. Unless the operator allows private addresses, every address a
    host resolves to must be public (no loopback, link-local, private, reserved), and the request
    goes to the address that was checked (no DNS rebinding)."""

    __slots__ = ("_allow_private",)

    def __init__(self, *, allow_private: bool) -> None:
        self._allow_private = allow_private

    def __call__(
        self,
        url: str,
        method: str = "GET",
        headers: dict | None = None,
        body: Any = None,
        timeout: float = FETCH_TIMEOUT_SECONDS,
    ) -> dict[str, Any]:
        method = str(method).upper()
        if method not in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"):
            raise MetaError(f"method {method!r} is not supported")
        content = body if isinstance(body, str | bytes) or body is None else _serialize(body)
        timeout = min(max(float(timeout), 0.1), 60.0)
        for _ in range(MAX_REDIRECTS + 1):
            response = self._once(str(url), method, dict(headers or {}), content, timeout)
            location = response.pop("location", None)
            if location is None:
                return response
            url = urllib.parse.urljoin(str(url), location)
            if response["status"] in (301, 302, 303):
                method, content = "GET", None
        raise MetaError(f"more than {MAX_REDIRECTS} redirects")

    def _once(self, url: str, method: str, headers: dict, content: Any, timeout: float) -> dict[str, Any]:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise MetaError(f"only http(s) URLs can be fetched, not {url!r}")
        address = self._address(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        host = f"[{address}]" if ":" in address else address
        netloc = host if parts.port is None else f"{host}:{parts.port}"
        target = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        headers = {str(k): str(v) for k, v in headers.items()} | {"Host": parts.netloc.rsplit("@", 1)[-1]}
        extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
        try:
            with (
                httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client,
                client.stream(
                    method,
                    target,
                    headers=headers,
                    content=content,
                    extensions=extensions,
                ) as response,
            ):
                body = bytearray()
                for chunk in response.iter_bytes():
                    body.extend(chunk)
                    if len(body) > MAX_FETCH_BYTES:
                        raise MetaError(f"response larger than {MAX_FETCH_BYTES} bytes")
                result = {
                    "status": response.status_code,
                    "ok": 200 <= response.status_code < 300,
                    "headers": {k.lower(): v for k, v in response.headers.items()},
                    "text": body.decode(response.encoding or "utf-8", errors="replace"),
                }
                if response.is_redirect and "location" in response.headers:
                    result["location"] = response.headers["location"]
                return result
        except httpx.HTTPError as exc:
            raise MetaError(f"fetch {parts.hostname}: {exc}") from None

    def _address(self, hostname: str, port: int) -> str:
        try:
            infos = socket.getaddrinfo(hostname, port, proto=socket.IPPROTO_TCP)
        except OSError as exc:
            raise MetaError(f"cannot resolve {hostname!r}: {exc}") from None
        addresses = [info[4][0] for info in infos]
        if not self._allow_private:
            for address in addresses:
                ip = ipaddress.ip_address(address.split("%", 1)[0])
                if ip.version == 6 and ip.ipv4_mapped is not None:
                    ip = ip.ipv4_mapped
                if not ip.is_global or ip.is_multicast:
                    raise MetaError(f"fetching {hostname!r} ({ip}) is not allowed: not a public address")
        return addresses[0]


class JobHandle:
    """`meta.jobs.<name>(payload)`: when to run it. The job queue (jobs/) runs it."""

    __slots__ = ("_jobs", "_name", "_payload")

    def __init__(self, jobs: Jobs, name: str, payload: Any) -> None:
        self._jobs = jobs
        self._name = name
        self._payload = payload

    def run_now(self) -> None:
        self._jobs._enqueue(self._name, self._payload, None)

    def run_in(self, seconds: float = 0, minutes: float = 0, hours: float = 0, days: float = 0) -> None:
        delay = dt.timedelta(seconds=seconds, minutes=minutes, hours=hours, days=days)
        if delay < dt.timedelta(0) or delay > MAX_JOB_DELAY:
            raise MetaError("a job runs between now and a year from now")
        self._jobs._enqueue(self._name, self._payload, dt.datetime.now(dt.UTC) + delay)

    def run_at(self, when: dt.datetime) -> None:
        if not isinstance(when, dt.datetime):
            raise MetaError("run_at takes a datetime")
        when = when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
        if when - dt.datetime.now(dt.UTC) > MAX_JOB_DELAY:
            raise MetaError("a job runs between now and a year from now")
        self._jobs._enqueue(self._name, self._payload, when)


class Jobs:
    """`meta.jobs`: one attribute per job the plugin exports; enqueued in Postgres."""

    __slots__ = ("_bridge", "_config_id", "_names", "_queue", "_team_id")

    def __init__(self, *, names: frozenset[str], queue: JobQueue | None, team_id: int, config_id: int) -> None:
        self._names = names
        self._queue = queue
        self._team_id = team_id
        self._config_id = config_id
        self._bridge = _Bridge("jobs")

    def __getattr__(self, name: str) -> Callable[[Any], JobHandle]:
        if name.startswith("_") or name not in self._names:
            raise AttributeError(f"no job named {name!r}")
        return lambda payload=None: JobHandle(self, name, _plain(payload))

    def _enqueue(self, name: str, payload: Any, when: dt.datetime | None) -> None:
        if self._queue is None:
            raise MetaError("jobs are not available in this server")
        self._bridge.run(
            self._queue.enqueue_plugin_job,
            team_id=self._team_id, plugin_config_id=self._config_id, name=name, payload=payload, run_at=when,
        )  # fmt: skip


def _plain(payload: Any) -> Any:
    return json.loads(_serialize(payload))


class Meta:
    """The `meta` argument of every plugin function, one per plugin config."""

    __slots__ = (
        "attachments",
        "cache",
        "config",
        "fetch",
        "global_",
        "jobs",
        "logger",
        "metrics",
        "storage",
        "utils",
    )

    def __init__(
        self,
        *,
        config: dict[str, Any],
        attachments: dict[str, Attachment],
        storage: Storage,
        cache: Cache | None,
        logger: Logger,
        metrics: Metrics,
        fetch: Fetch,
        jobs: Jobs,
        utils: Utils,
    ) -> None:
        self.config = json.loads(json.dumps(config))  # the plugin's own copy
        self.attachments = {
            key: {
                "content_type": a.content_type,
                "file_name": a.file_name,
                "contents": a.contents,
            }
            for key, a in attachments.items()
        }
        self.global_: dict[str, Any] = {}
        self.storage = storage
        self.cache = cache
        self.logger = logger
        self.metrics = metrics
        self.fetch = fetch
        self.jobs = jobs
        self.utils = utils
