"""What every capability of `meta` shares: the one error plugins see, the key and value checks,
and the bridge from a plugin's worker thread back to trio.

Plugin code runs in worker threads (plugin_server/plugins/runtime.py); a capability's I/O goes
back to trio with `trio.from_thread.run`, so the event loop never blocks on a plugin. A failure
reaches the plugin as `MetaError` with a message only: an exception object carries what it
references into plugin code. A failure of a backing service (Postgres, Redis down) fails the
whole plugin call instead, so that the batch is retried (meta/outage.py).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from plugin_server.core.errors import PluginServerError
from plugin_server.plugins.meta import outage

# Sizes a plugin may not exceed through meta (each one a guard against a bomb through the host).
MAX_KEY_CHARS = 200  # posthog_pluginstorage.key is varchar(200)
MAX_STORED_CHARS = 1_000_000  # one storage or cache value, serialized


class MetaError(Exception):
    """What a plugin sees when meta cannot do what it asked: a message, nothing else."""


class Bridge:
    """Runs host coroutines from a plugin's worker thread: a refused request is a MetaError, an
    outage fails the plugin call (meta/outage.py)."""

    __slots__ = ("_what",)

    def __init__(self, what: str) -> None:
        self._what = what

    def run(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        outage.refuse_after_outage(self._what)
        try:
            return trio.from_thread.run(functools.partial(fn, *args, **kwargs))
        except PluginServerError as exc:
            if not exc.retryable:
                raise MetaError(f"{self._what}: {exc}") from None
            failure = exc
        except trio.RunFinishedError:
            raise MetaError(f"{self._what}: the server is stopping") from None
        # outside the except block: the abort the plugin may catch carries no host exception
        outage.fail_call(self._what, failure)
        raise MetaError(f"{self._what}: {failure}")


def check_key(key: Any) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS:
        raise MetaError(f"a key must be a non-empty string of at most {MAX_KEY_CHARS} characters")
    return key


def serialize(value: Any) -> str:
    """`value` as compact JSON, at most MAX_STORED_CHARS of it."""
    try:
        text = json.dumps(value, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise MetaError(f"value is not JSON: {exc}") from None
    if len(text) > MAX_STORED_CHARS:
        raise MetaError(f"value is larger than {MAX_STORED_CHARS} characters as JSON")
    return text
