"""What every capability of `meta` shares: the one error plugins see, the key and value checks,
and the bridge from a plugin's worker thread back to trio.

Plugin code runs in worker threads (plugin_server/plugins/runtime.py); a capability's I/O goes
back to trio with `trio.from_thread.run`, so the event loop never blocks on a plugin. A failure
reaches the plugin as `MetaError` with a message only: an exception object carries what it
references into plugin code. A failure of a backing service (Postgres, Redis down) fails the
whole plugin call instead, so that the batch is retried (meta/outage.py).
"""

from __future__ import annotations

import collections
import decimal
import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from plugin_server.core.errors import PluginServerError
from plugin_server.plugins.meta import outage
from vm.sizes import MAX_DECIMAL_DIGITS

# Sizes a plugin may not exceed through meta (each one a guard against a bomb through the host).
MAX_KEY_CHARS = 200  # posthog_pluginstorage.key is varchar(200)
MAX_STORED_CHARS = 1_000_000  # one storage or cache value, serialized
MAX_DEPTH = 100  # nesting of a value handed to meta: JSON encoders and parsers recurse per level


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
            failure: PluginServerError | None = exc
            message = f"{self._what}: {exc}"
        except trio.RunFinishedError:
            failure, message = None, f"{self._what}: the server is stopping"
        # Raised outside the except block: `raise ... from None` would still keep the host's
        # exception (and its frames) as the MetaError's __context__, and the abort the plugin may
        # catch carries no host exception either.
        if failure is not None and failure.retryable:
            outage.fail_call(self._what, failure)
        raise MetaError(message)


def check_key(key: Any) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS:
        raise MetaError(f"a key must be a non-empty string of at most {MAX_KEY_CHARS} characters")
    return key


def serialize(value: Any) -> str:
    """`value` as compact JSON, at most MAX_STORED_CHARS of it (checked or copied first: `plain`)."""
    copy = plain(value, limit=MAX_STORED_CHARS)
    try:
        text = json.dumps(copy, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        error = MetaError(f"value is not JSON: {exc}")
    else:
        if len(text) <= MAX_STORED_CHARS:
            return text
        error = MetaError(f"value is larger than {MAX_STORED_CHARS} characters as JSON")
    raise error


_EXACT_SCALARS = frozenset({str, int, float, bool, type(None)})


def plain(value: Any, *, limit: int, default: Callable[[Any], str] | None = None) -> Any:
    """`value` itself when it is plain JSON data of exact builtin types within `limit` and
    MAX_DEPTH (`json.dumps` or `str()` of it then runs nothing of the plugin's and is bounded),
    else its `plain_copy`. Refuses with a MetaError."""
    return value if _is_plain(value, limit) else plain_copy(value, limit=limit, default=default)


def _is_plain(value: Any, limit: int) -> bool:
    """Whether `value` is exact dicts, lists and tuples of exact scalars (and scalar keys), after
    one pass level by level that estimates the JSON size and counts the depth of whatever it is
    (subclasses read with the base classes' methods). A shared reference counts each time it
    appears, so a self-similar structure is refused by its size, and a cycle by its depth, before
    anything is copied or serialized."""
    level = [value]
    size = 0
    exact = True
    for _ in range(MAX_DEPTH + 1):
        below: list[Any] = []
        for item in level:
            kind = type(item)
            if kind is str:
                size += len(item) + 2
            elif kind is dict or kind is list or kind is tuple:
                size += 2 + 2 * len(item)
                if kind is dict:
                    for key in item:
                        if type(key) is str:
                            size += len(key)
                        elif type(key) not in _EXACT_SCALARS:
                            exact = False
                    below.extend(item.values())
                else:
                    below.extend(item)
            elif kind is int:
                size += item.bit_length() // 3 + 2
            elif kind in _EXACT_SCALARS:
                size += 24
            else:
                exact = False  # copied by plain_copy, once this pass has bounded it
                size += _estimate_other(item, below)
            if size > limit:
                raise MetaError(f"value is larger than {limit} characters as JSON")
        if not below:
            return exact
        level = below
    raise MetaError(f"value is nested more than {MAX_DEPTH} deep (or contains itself)")


def check_argument(value: Any) -> None:
    """An argument crossing into a capability (`_facade`): whatever the capability then does with
    it (`str()` of a url or a header, `json.dumps` of a body), its size and depth are bounded
    first. A flat str, int or float is left to the capability's own limits. A Decimal a
    capability would make an int of (a count, a cursor step) has at most MAX_DECIMAL_DIGITS digits
    before the point: the host's int() of Decimal("1e999999999") is one C call of minutes."""
    if type(value) in _EXACT_SCALARS:
        return
    if isinstance(value, decimal.Decimal):
        if decimal.Decimal.is_finite(value) and decimal.Decimal.adjusted(value) > MAX_DECIMAL_DIGITS:
            raise MetaError(f"a Decimal of more than {MAX_DECIMAL_DIGITS} digits")
        return
    _is_plain(value, MAX_STORED_CHARS)


def _estimate_other(item: Any, below: list[Any]) -> int:
    """The estimated JSON size of a subclass or another type, its members added to `below`: the
    base classes' methods, whatever a plugin's subclass defines."""
    if isinstance(item, str):
        return str.__len__(item) + 2
    if isinstance(item, int):
        return int.bit_length(item) // 3 + 2
    if isinstance(item, dict):
        below.extend(dict.values(item))
        return 2 + 4 * dict.__len__(item)
    if isinstance(item, list):
        below.extend(list.copy(item))
        return 2 + 2 * list.__len__(item)
    if isinstance(item, tuple):
        below.extend(tuple.__iter__(item))
        return 2 + 2 * tuple.__len__(item)
    # what str() of it recurses into
    if isinstance(item, (set, frozenset, collections.deque)):
        below.extend(item)
        return 2 + 2 * len(item)
    if isinstance(item, BaseException):
        below.extend(BaseException.args.__get__(item))  # type: ignore[attr-defined]  # typeshed: args is a getset descriptor on the class
        return 32
    if isinstance(item, (bytes, bytearray)):
        return 4 * len(item) + 3
    return 32


def plain_copy(value: Any, *, limit: int, default: Callable[[Any], str] | None = None) -> Any:
    """A copy of `value` as plain JSON data (dict, list, str, int, float, bool, None), made before
    the host serializes it, or a MetaError.

    The host's `json.dumps` or `str()` of a plugin's value is one C call holding the GIL: a
    self-similar structure (`a = [a, a]` forty times) expands to 2**40 items, a cycle or a
    million-deep nesting recurses. So the copy is iterative and estimates the JSON size as it
    goes, counting a shared reference each time it appears: past `limit` characters, or nested
    deeper than MAX_DEPTH (which a cycle always is), it is refused before anything is serialized.
    It reads containers with the base classes' methods, so a plugin's subclass that defines
    `items()` or `keys()` runs nothing here, and the copy is of exact builtin types. Other values
    are refused as not JSON, or replaced by `default(value)` (the logger's `<TypeName>`).
    """
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, int]] = [(value, root, 0, 0)]
    size = 0
    while stack:
        item, parent, slot, depth = stack.pop()
        if item is None or item is True or item is False:
            copy: Any = item
            size += 5
        elif isinstance(item, str):
            copy = str.__str__(item)  # an exact str
            size += len(copy) + 2
        elif isinstance(item, int):
            copy = int.__int__(item)
            size += int.bit_length(copy) // 3 + 2
        elif isinstance(item, float):
            copy = float.__float__(item)
            size += 24
        elif isinstance(item, (dict, list, tuple)):
            if depth >= MAX_DEPTH:
                raise MetaError(f"value is nested more than {MAX_DEPTH} deep (or contains itself)")
            size += 2 + 2 * len(item)  # brackets, separators: checked before anything is copied
            if size > limit:
                break
            copy = _container(item, depth, stack, default)
        elif default is not None:
            copy = default(item)
            size += len(copy) + 2
        else:
            raise MetaError(f"value is not JSON: Object of type {type(item).__name__} is not JSON serializable")
        if size > limit:
            break
        parent[slot] = copy
    if size > limit:
        raise MetaError(f"value is larger than {limit} characters as JSON")
    return root[0]


def _container(
    item: dict[Any, Any] | list[Any] | tuple[Any, ...],
    depth: int,
    stack: list[tuple[Any, Any, Any, int]],
    default: Callable[[Any], str] | None,
) -> Any:
    """The empty copy of a container, its members pushed on `stack` to fill it in order."""
    if isinstance(item, dict):
        copy: dict[Any, Any] = {}
        for key, member in dict.items(item):
            plain_key = _plain_key(key, default)
            copy[plain_key] = None
            stack.append((member, copy, plain_key, depth + 1))
        return copy
    members = list.copy(item) if isinstance(item, list) else list(tuple.__iter__(item))
    items: list[Any] = [None] * len(members)
    stack.extend((member, items, index, depth + 1) for index, member in enumerate(members))
    return items


def _plain_key(key: Any, default: Callable[[Any], str] | None) -> Any:
    """A dict key as JSON takes it (str, int, float, bool, None), of an exact builtin type."""
    if isinstance(key, str):
        return str.__str__(key)
    if key is None or key is True or key is False:
        return key
    if isinstance(key, int):
        return int.__int__(key)
    if isinstance(key, float):
        return float.__float__(key)
    if default is None:
        raise MetaError(f"value is not JSON: keys must be str, int, float, bool or None, not {type(key).__name__}")
    return default(key)
