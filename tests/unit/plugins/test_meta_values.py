"""What plugins hand to meta is checked or copied before the host serializes it
(`plugin_server/plugins/meta/_bridge.py`: `plain`, `plain_copy`, `serialize`; the logger)."""

from __future__ import annotations

import time

import pytest

from plugin_server.plugins.meta import MetaError
from plugin_server.plugins.meta._bridge import MAX_DEPTH, MAX_STORED_CHARS, plain, serialize
from plugin_server.plugins.meta.logger import MAX_LOG_CHARS, Logger


class Text(str):
    def upper(self):  # a plugin's subclass may define any non-dunder method
        raise AssertionError("plugin code ran on the host")


class Mapping(dict):
    def items(self):
        raise AssertionError("plugin code ran on the host")

    def keys(self):
        raise AssertionError("plugin code ran on the host")


class Listed(list):
    pass


class Number(int):
    def bit_length(self):
        return 0


def self_similar(levels: int) -> list:
    value: list = []
    for _ in range(levels):
        value = [value, value]
    return value


def nested(levels: int) -> list:
    value: list = []
    for _ in range(levels):
        value = [value]
    return value


def cycle() -> list:
    value: list = []
    value.append(value)
    return value


@pytest.mark.parametrize(
    ("value", "json"),
    [
        ({"a": [1, 2.5, None, True], "b": (1, "x")}, '{"a":[1,2.5,null,true],"b":[1,"x"]}'),
        (Mapping({Text("k"): Number(7)}), '{"k":7}'),
        ({1: "one", None: "none", False: "no", 1.5: "x"}, '{"1":"one","null":"none","false":"no","1.5":"x"}'),
        (nested(MAX_DEPTH - 1), "[" * MAX_DEPTH + "]" * MAX_DEPTH),
    ],
    ids=["plain", "subclasses-copied-with-base-methods", "scalar-keys", "deep-within-the-limit"],
)
def test_json_values_are_serialized_as_json_would(value, json):
    assert serialize(value) == json


# factories, not values: pytest shows a failing test's arguments, and the repr of a self-similar
# structure is exactly the expansion these tests are about
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: self_similar(40), "larger than"),
        (lambda: [self_similar(40)], "larger than"),
        (lambda: Mapping(a=self_similar(40)), "larger than"),
        (lambda: Listed([Listed(self_similar(40))]), "larger than"),
        (lambda: nested(MAX_DEPTH + 1), "nested more than"),
        (lambda: nested(100_000), "nested more than"),
        (cycle, "nested more than"),
        (lambda: {"a": cycle()}, "nested more than"),
        (lambda: "x" * (MAX_STORED_CHARS + 1), "larger than"),
        (lambda: Number(1 << 3_100_000), "larger than"),  # its bit_length() says 0; the base class's does not
        (lambda: {(1, 2): 3}, "keys must be str"),
        (lambda: {1, 2}, "not JSON serializable"),
        (lambda: [object()], "not JSON serializable"),
    ],
    ids=[
        "self-similar", "inside-a-list", "inside-a-subclass", "of-list-subclasses", "too-deep", "million-deep",
        "cycle", "cycle-inside", "too-long", "int-subclass-bits", "tuple-key", "set", "object",
    ],
)  # fmt: skip
def test_values_are_refused_before_the_host_serializes_them(make, message):
    value = make()
    started = time.monotonic()
    with pytest.raises(MetaError, match=message) as refused:
        serialize(value)
    assert refused.value.__context__ is None
    assert time.monotonic() - started < 1.0


def test_exact_plain_data_passes_through_uncopied():
    value = {"a": [1, {"b": "c"}]}
    assert plain(value, limit=100) is value
    copy = plain(Mapping(value), limit=100)
    assert copy == value and type(copy) is dict


def test_the_logger_bounds_what_it_joins_and_shows_what_it_cannot_serialize():
    written: list = []
    logger = Logger(write=lambda *entry: written.append(entry))
    part = "x" * 10_000_000
    logger.info(*[part] * 1000)
    logger.info("set", {1, 2}, Text("t"), object)  # noqa: PLE1205 - not a logging.Logger
    with pytest.raises(MetaError, match="larger than"):
        logger.info(self_similar(40))
    assert len(written[0][2]) <= 2 * MAX_LOG_CHARS + 1
    assert written[1] == ("PLUGIN", "INFO", 'set "<set>" t "<type>"')
