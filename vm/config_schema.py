"""A plugin's config schema (the `config` of plugin.json) and validation of a config against it.

PostHog's shape (REFERENCE.md 6.1): a list of fields, or an object keyed by field key. A field
has `key`, `name`, `type` (`string` by default, `choice`, `json`, `attachment`, or `markdown`
for text only), `default`, `required`, `required_if` / `visible_if` (lists of `[other_key,
value]`, value omitted meaning "any non-empty value"), `secret`, `hint`, `order`, `choices`.

PostHog validates configs in Django and hands the plugin the stored strings. Here the server
validates on install and on every load (a config edited in Postgres by hand is checked too),
fills defaults, and hands `json` fields to the plugin parsed: Python plugins get a value, not a
string to parse.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from plugin_server.core.errors import PluginServerError

FIELD_TYPES = ("string", "choice", "json", "attachment", "markdown")
# Longest value accepted for one field: configs travel with every plugin load.
MAX_VALUE_CHARS = 65_536


class SchemaError(PluginServerError):
    """plugin.json's `config` is malformed."""


class ConfigError(PluginServerError):
    """A plugin config does not satisfy the plugin's schema; `problems` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Field:
    key: str
    type: str = "string"
    name: str = ""
    default: Any = None
    required: bool = False
    secret: bool = False
    hint: str = ""
    choices: tuple[str, ...] = ()
    required_if: tuple[tuple[str, Any], ...] = ()
    visible_if: tuple[tuple[str, Any], ...] = ()


_ANY = object()  # a condition without a value: "any non-empty value"


def parse_schema(raw: Any) -> list[Field]:
    """plugin.json's `config` -> fields; SchemaError naming the field for anything malformed."""
    if raw is None:
        return []
    if isinstance(raw, Mapping):
        raw = [{"key": key, **field} if isinstance(field, Mapping) else field for key, field in raw.items()]
    if not isinstance(raw, list):
        raise SchemaError("config must be a list of fields or an object keyed by field key")
    fields: list[Field] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        field = _parse_field(item, index)
        if field is None:
            continue
        if field.key in seen:
            raise SchemaError(f"config field {field.key!r} is defined twice")
        seen.add(field.key)
        fields.append(field)
    return fields


def _parse_field(item: Any, index: int) -> Field | None:
    where = f"config field #{index + 1}"
    if not isinstance(item, Mapping):
        raise SchemaError(f"{where} must be an object")
    kind = item.get("type", "string")
    if kind not in FIELD_TYPES:
        raise SchemaError(f"{where}: type {kind!r} is not one of {', '.join(FIELD_TYPES)}")
    if kind == "markdown":
        return None  # text shown to the user, no value
    key = item.get("key")
    if not isinstance(key, str) or not key.isidentifier():
        raise SchemaError(f"{where}: key must be a name (letters, digits, underscores), got {key!r}")
    choices = item.get("choices", ())
    if kind == "choice" and (
        not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices)
    ):
        raise SchemaError(f"config field {key!r}: a choice needs a non-empty list of string choices")
    return Field(
        key=key,
        type=kind,
        name=str(item.get("name", key)),
        default=item.get("default"),
        required=bool(item.get("required", False)),
        secret=bool(item.get("secret", False)),
        hint=str(item.get("hint", "")),
        choices=tuple(choices) if kind == "choice" else (),
        required_if=_conditions(item.get("required_if"), key, "required_if"),
        visible_if=_conditions(item.get("visible_if"), key, "visible_if"),
    )


def _conditions(raw: Any, key: str, name: str) -> tuple[tuple[str, Any], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise SchemaError(f"config field {key!r}: {name} must be a list of [key, value] pairs")
    out = []
    for condition in raw:
        if not isinstance(condition, list) or not 1 <= len(condition) <= 2 or not isinstance(condition[0], str):
            raise SchemaError(f"config field {key!r}: {name} entries are [key] or [key, value], got {condition!r}")
        out.append((condition[0], condition[1] if len(condition) == 2 else _ANY))
    return tuple(out)


def _holds(conditions: tuple[tuple[str, Any], ...], config: Mapping[str, Any]) -> bool:
    """True when every condition holds (no conditions: True)."""
    for other, value in conditions:
        present = config.get(other)
        if value is _ANY:
            if present in (None, ""):
                return False
        elif present != value:
            return False
    return True


def validate(
    fields: list[Field], config: Mapping[str, Any], *, attachments: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The config a plugin sees: defaults filled in, `json` fields parsed, unknown keys refused.
    ConfigError lists every problem at once."""
    if not isinstance(config, Mapping):
        raise ConfigError(["config must be an object"])
    problems: list[str] = []
    known = {f.key for f in fields}
    problems.extend(f"unknown config key {key!r}" for key in config if key not in known)
    raw = {f.key: config.get(f.key, f.default) for f in fields if f.type != "attachment"}
    out: dict[str, Any] = {}
    for field in fields:
        if field.type == "attachment":
            if field.key not in attachments and _required(field, raw):
                problems.append(f"attachment {field.key!r} is required")
            continue
        value = raw.get(field.key)
        if value in (None, ""):
            if _required(field, raw):
                problems.append(f"{field.key!r} is required")
            continue
        problem = _check(field, value)
        if problem is not None:
            problems.append(problem)
            continue
        out[field.key] = json.loads(value) if field.type == "json" and isinstance(value, str) else value
    if problems:
        raise ConfigError(problems)
    return out


def _required(field: Field, config: Mapping[str, Any]) -> bool:
    if not _holds(field.visible_if, config):
        return False
    return field.required or (bool(field.required_if) and _holds(field.required_if, config))


def _check(field: Field, value: Any) -> str | None:
    if field.type == "json":
        if isinstance(value, str):
            try:
                json.loads(value)
            except ValueError as exc:
                return f"{field.key!r} is not valid JSON: {exc}"
        return None
    if not isinstance(value, str):
        return f"{field.key!r} must be a string, got {type(value).__name__}"
    if len(value) > MAX_VALUE_CHARS:
        return f"{field.key!r} is longer than {MAX_VALUE_CHARS} characters"
    if field.type == "choice" and value not in field.choices:
        return f"{field.key!r} must be one of {', '.join(map(repr, field.choices))}, got {value!r}"
    return None
