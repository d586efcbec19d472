"""What leaves the sandbox: a plain-data copy of a plugin's result, built without plugin code.

Only dicts with str keys, lists/tuples, str, int, float, bool and None leave; copies are made with
the base types' own methods (`dict.items`, `list.__iter__`, `str.__str__`, ...), so no method a
plugin defined or overrode runs on the host, and subclasses come out as their plain base type.
"""

from __future__ import annotations

from typing import Any

from vm.errors import PluginResourceError, PluginRuntimeError

MAX_RESULT_DEPTH = 100  # nesting of a returned value


def export_value(
    value: Any,
    max_bytes: int,
    where: tuple[str | None, int | None, str] = (None, None, ""),
) -> Any:
    """A plain-data copy of what plugin code returned, or PluginRuntimeError/PluginResourceError.

    Only dicts with str keys, lists/tuples, str, int, float, bool and None leave the sandbox;
    copies are built with the base types' own methods, so no plugin-defined method runs here.
    One pass: the copy counts its JSON-ish size and stops past `max_bytes`, so a self-similar
    structure is refused before it is expanded.
    """
    file, line, _ = where
    budget = [max_bytes]
    return _copy_plain(value, 0, budget, file, line)


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _copy_plain(value: Any, depth: int, budget: list[int], file: str | None, line: int | None) -> Any:
    """Copy one value; scalars inside containers are handled inline (most of an event)."""
    kind = type(value)
    if kind in _SCALARS:
        budget[0] -= len(value) + 3 if kind is str else 8
        copy: Any = value
    elif depth >= MAX_RESULT_DEPTH:
        raise PluginResourceError(
            f"the returned value is nested deeper than {MAX_RESULT_DEPTH}",
            file=file,
            line=line,
        )
    elif isinstance(value, dict):
        copy = {}
        size = 2
        for key, item in dict.items(value):
            if type(key) is not str:
                raise PluginRuntimeError(
                    f"returned a dict with a {type(key).__name__} key; keys must be str",
                    file=file,
                    line=line,
                )
            item_kind = type(item)
            if item_kind is str:
                size += len(key) + len(item) + 7
                copy[key] = item
            elif item_kind in _SCALARS:
                size += len(key) + 12
                copy[key] = item
            else:
                budget[0] -= size + len(key)
                size = 0
                copy[key] = _copy_plain(item, depth + 1, budget, file, line)
        budget[0] -= size
    elif isinstance(value, (list, tuple)):
        budget[0] -= 2 + 2 * len(value)
        items = list.__iter__(value) if isinstance(value, list) else tuple.__iter__(value)
        copy = [
            item
            if type(item) in _SCALARS and type(item) is not str
            else _copy_plain(item, depth + 1, budget, file, line)
            for item in items
        ]
    elif isinstance(value, str):
        budget[0] -= len(value) + 3
        copy = str.__str__(value)
    elif isinstance(value, (int, float)):
        budget[0] -= 8
        copy = int.__index__(value) if isinstance(value, int) else float.__float__(value)
    else:
        raise PluginRuntimeError(
            f"returned a {kind.__name__}; plugins may return only dict, list, str, int, float, bool or None",
            file=file,
            line=line,
        )
    if budget[0] < 0:
        raise PluginResourceError(
            "the returned value is larger than the result size limit",
            file=file,
            line=line,
        )
    return copy
