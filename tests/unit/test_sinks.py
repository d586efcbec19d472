import re

import pytest

from plugin_server.storage.sinks import dedup_token

POSITIONS = {("events_plugin_ingestion", 0): [10, 20], ("events_plugin_ingestion", 1): [5, 5], ("other", 0): [0, 3]}


def test_token_is_a_sha256_hex_digest():
    assert re.fullmatch(r"[0-9a-f]{64}", dedup_token("events", POSITIONS))


def test_same_inputs_same_token_regardless_of_dict_order():
    reordered = dict(reversed(list(POSITIONS.items())))
    assert list(reordered) != list(POSITIONS)
    assert dedup_token("events", POSITIONS) == dedup_token("events", reordered)
    assert dedup_token("events", POSITIONS, "a") == dedup_token("events", reordered, "a")


def test_same_inputs_same_token_on_every_call():
    assert dedup_token("events", {("t", 0): [1, 2]}) == dedup_token("events", {("t", 0): [1, 2]})


@pytest.mark.parametrize(
    ("table", "positions", "part"),
    [
        ("ingestion_warnings", POSITIONS, ""),
        ("events", {**POSITIONS, ("events_plugin_ingestion", 0): [10, 21]}, ""),
        ("events", {**POSITIONS, ("events_plugin_ingestion", 0): [11, 20]}, ""),
        ("events", {**POSITIONS, ("events_plugin_ingestion", 2): [0, 0]}, ""),
        ("events", {k: v for k, v in POSITIONS.items() if k != ("other", 0)}, ""),
        ("events", {("renamed", 0) if k == ("other", 0) else k: v for k, v in POSITIONS.items()}, ""),
        ("events", {("other", 1) if k == ("other", 0) else k: v for k, v in POSITIONS.items()}, ""),
        ("events", POSITIONS, ":a"),
        ("events", {}, ""),
    ],
    ids=[
        "other-table", "higher-end", "higher-start", "extra-partition", "fewer-partitions", "other-topic",
        "other-partition", "bisected-part", "no-positions",
    ],
)  # fmt: skip
def test_different_inputs_give_different_tokens(table, positions, part):
    assert dedup_token(table, positions, part) != dedup_token("events", POSITIONS)
