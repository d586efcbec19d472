"""plugin.json config schemas and the validation of configs against them."""

from __future__ import annotations

import pytest

from vm.config_schema import ConfigError, Field, SchemaError, parse_schema, validate

SCHEMA = [
    {"markdown": "Some help text", "type": "markdown"},
    {"key": "host", "name": "Host", "type": "string", "required": True},
    {"key": "mode", "type": "choice", "choices": ["fast", "safe"], "default": "safe"},
    {"key": "mapping", "type": "json", "default": "{}"},
    {"key": "token", "type": "string", "secret": True, "required_if": [["mode", "fast"]]},
    {"key": "extra", "visible_if": [["host"]], "required_if": [["mode", "safe"]]},
    {"key": "cert", "type": "attachment", "required_if": [["mode", "fast"]]},
]


def test_a_schema_as_a_list_or_an_object():
    as_list = parse_schema(SCHEMA)
    assert [f.key for f in as_list] == ["host", "mode", "mapping", "token", "extra", "cert"]
    assert as_list[1] == Field(key="mode", type="choice", name="mode", default="safe", choices=("fast", "safe"))
    as_object = parse_schema({"host": {"type": "string", "required": True}})
    assert as_object == [Field(key="host", name="host", required=True)]
    assert parse_schema(None) == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("nope", "must be a list"),
        ([1], "#1 must be an object"),
        ([{"key": "a", "type": "number"}], "type 'number' is not one of"),
        ([{"key": "a b"}], "key must be a name"),
        ([{"type": "string"}], "key must be a name"),
        ([{"key": "a"}, {"key": "a"}], "defined twice"),
        ([{"key": "c", "type": "choice"}], "non-empty list of string choices"),
        ([{"key": "c", "type": "choice", "choices": [1]}], "non-empty list of string choices"),
        ([{"key": "a", "required_if": "b"}], "required_if must be a list"),
        ([{"key": "a", "visible_if": [["b", 1, 2]]}], "entries are [key] or [key, value]"),
        ([{"key": "a", "visible_if": [[3]]}], "entries are [key] or [key, value]"),
    ],
)
def test_malformed_schemas_are_refused_with_the_field_named(raw, message):
    with pytest.raises(SchemaError, match=__import__("re").escape(message)):
        parse_schema(raw)


@pytest.mark.parametrize(
    ("config", "attachments", "expected"),
    [
        ({"host": "h", "extra": "x"}, (), {"host": "h", "mode": "safe", "mapping": {}, "extra": "x"}),
        ({"host": "h", "mode": "fast", "token": "t", "mapping": '{"a": [1]}'}, ("cert",),
         {"host": "h", "mode": "fast", "mapping": {"a": [1]}, "token": "t"}),
        ({"host": "h", "mode": "fast", "token": "t", "mapping": {"already": "parsed"}}, ("cert",),
         {"host": "h", "mode": "fast", "token": "t", "mapping": {"already": "parsed"}}),
    ],
)  # fmt: skip
def test_valid_configs_get_defaults_and_parsed_json(config, attachments, expected):
    assert validate(parse_schema(SCHEMA), config, attachments=frozenset(attachments)) == expected


@pytest.mark.parametrize(
    ("config", "problems"),
    [
        ({}, ["'host' is required"]),
        ({"host": ""}, ["'host' is required"]),
        ({"host": "h", "extra": "x", "mode": "slow"}, ["'mode' must be one of 'fast', 'safe', got 'slow'"]),
        ({"host": "h", "mode": "fast"}, ["'token' is required", "attachment 'cert' is required"]),
        ({"host": "h", "extra": "x", "mapping": "{nope"}, ["'mapping' is not valid JSON: Expecting property name"]),
        ({"host": 5, "extra": "x"}, ["'host' must be a string, got int"]),
        ({"host": "h", "extra": "x", "surprise": 1}, ["unknown config key 'surprise'"]),
        ({"host": "h" * 70_000, "extra": "x"}, ["'host' is longer than 65536 characters"]),
        ({"host": "h"}, ["'extra' is required"]),  # visible (host set) and required_if mode == safe (default)
    ],
)
def test_invalid_configs_list_every_problem(config, problems):
    with pytest.raises(ConfigError) as info:
        validate(parse_schema(SCHEMA), config)
    assert len(info.value.problems) == len(problems)
    for found, expected in zip(info.value.problems, problems, strict=True):
        assert found.startswith(expected)


def test_a_field_hidden_by_visible_if_is_not_required():
    fields = parse_schema([{"key": "a"}, {"key": "b", "required": True, "visible_if": [["a", "on"]]}])
    assert validate(fields, {"a": "off"}) == {"a": "off"}
    with pytest.raises(ConfigError, match="'b' is required"):
        validate(fields, {"a": "on"})


def test_a_config_that_is_not_an_object():
    with pytest.raises(ConfigError, match="config must be an object"):
        validate([], ["a"])
