import json
import math

import pytest

from plugin_server.app.config import Settings
from plugin_server.ops import status
from plugin_server.ops.status import GroupLag, JobTask, PartitionLag, PluginError, PluginsStatus, Status
from plugin_server.storage.kafka.reader import LogRange

# --- lag arithmetic --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("committed", "beginning", "end", "expected"),
    [
        (None, 0, 0, 0),  # empty partition, never committed
        (None, 0, 10, 10),  # never committed: everything the log holds
        (None, 4, 10, 6),  # ... which starts after retention
        (10, 0, 10, 0),  # caught up
        (7, 0, 10, 3),
        (0, 0, 10, 10),  # committed at 0 is a commit, not "none"
        (12, 0, 10, 0),  # end measured before the commit landed: caught up, never negative
        (2, 5, 10, 5),  # committed below what retention kept: it would restart at the beginning
        (-1, 0, 10, 10),  # Kafka's "no offset"
        (None, -1, 10, 10),  # malformed beginning
        (None, 10, 5, 0),  # malformed: end before beginning
        (3, 0, -1, 0),  # malformed end
    ],
)
def test_lag(committed, beginning, end, expected):
    assert status.lag(committed=committed, beginning=beginning, end=end) == expected


def test_partition_lags_keeps_the_topics_asked_in_order_and_missing_commits_as_none():
    ranges = {
        ("b", 1): LogRange(0, 5),
        ("a", 0): LogRange(0, 7),
        ("b", 0): LogRange(2, 9),
        ("other", 0): LogRange(0, 100),
    }
    committed = {("a", 0): 7, ("b", 0): -1, ("other", 0): 1}
    assert status.partition_lags(("a", "b"), ranges, committed) == (
        PartitionLag("a", 0, 7, 0, 7, 0),
        PartitionLag("b", 0, None, 2, 9, 7),
        PartitionLag("b", 1, None, 0, 5, 5),
    )
    assert status.partition_lags(("missing",), ranges, committed) == ()


def test_consumer_groups_name_every_group_the_server_uses():
    settings = Settings(
        kafka_consumer_group="ing",
        kafka_writer_group="wr",
        kafka_async_group="as",
        kafka_consumption_topic="events_in",
        clickhouse_json_events_kafka_topic="rows",
    )
    groups = status.consumer_groups(settings)
    assert [(role, group) for role, group, _ in groups] == [("ingestion", "ing"), ("writer", "wr"), ("async", "as")]
    assert groups[0][2] == ("events_in",)
    assert groups[1][2][0] == "rows" and len(groups[1][2]) == len(set(groups[1][2])) == 6
    assert groups[2][2] == ("rows",)


def test_group_lag_sums_its_partitions():
    group = GroupLag("writer", "w", ("t",), (PartitionLag("t", 0, 1, 0, 4, 3), PartitionLag("t", 1, None, 0, 2, 2)))
    assert group.lag == 5
    assert GroupLag("writer", "w", ("t",), ()).lag == 0


# --- Postgres rows -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "message", "time"),
    [
        ({"message": "boom", "time": "2024-05-10T12:00:00+00:00"}, "boom", "2024-05-10T12:00:00+00:00"),
        ({"message": "boom", "name": "TypeError"}, "TypeError: boom", None),
        ({"message": "TypeError: boom", "name": "TypeError"}, "TypeError: boom", None),  # not twice
        ({"message": "line one\n\n  line two\tend"}, "line one line two end", None),
        ({"message": 42, "time": 1715342400}, "42", "1715342400"),  # wrong types shown as they are
        ({"message": ""}, '{"message": ""}', None),
        ({"message": " \n", "time": "t"}, '{"message": " \\n", "time": "t"}', "t"),
        ({"time": "t"}, '{"time": "t"}', "t"),  # no message: the whole value
        ({"name": 3, "message": "m"}, "m", None),
        ("just text", "just text", None),
        (["a", 1], '["a", 1]', None),
        (7, "7", None),
        (None, "null", None),
    ],
)
def test_error_fields_read_posthogs_shape_and_show_anything_else(error, message, time):
    assert status.error_fields(error) == (message, time)


@pytest.mark.parametrize(
    ("text", "width", "expected"),
    [
        ("short", 10, "short"),
        ("exactly10!", 10, "exactly10!"),
        ("eleven char", 10, "eleven ..."),
        ("  a \n b  ", 10, "a b"),
        ("abcdef", 4, "a..."),
        ("abcdef", 3, "abc"),  # too narrow for an ellipsis
        ("abcdef", 0, ""),
        ("", 10, ""),
    ],
)
def test_one_line(text, width, expected):
    assert status.one_line(text, width) == expected


def test_long_messages_are_cut_to_the_message_width():
    message, _ = status.error_fields({"message": "x" * 500})
    assert len(message) == status.MESSAGE_WIDTH and message.endswith("...")


@pytest.mark.parametrize(
    ("plugin", "time", "expected_plugin", "expected_time"),
    [
        ("geoip", "t", "geoip", "t"),
        (None, "t", "?", "t"),
        (" \n", "t", "?", "t"),
        ("two\nlines", "a\tb", "two lines", "a b"),
        ("p" * 100, "9" * 100, "p" * 37 + "...", "9" * 37 + "..."),
    ],
)
def test_plugin_error_row(plugin, time, expected_plugin, expected_time):
    row = {"config_id": 3, "team_id": 2, "enabled": True, "plugin": plugin, "error": {"message": "m", "time": time}}
    assert status.plugin_error(row) == PluginError(3, 2, expected_plugin, True, "m", expected_time)


@pytest.mark.parametrize(
    ("oldest", "expected"),
    [(None, None), (12.5, 12.5), (-0.2, 0.0)],  # negative: clock skew between now() calls
)
def test_job_task_row(oldest, expected):
    row = {"task_identifier": "t", "depth": 3, "due": 2, "locked": 1, "oldest_due_seconds": oldest}
    assert status.job_task(row) == JobTask("t", 3, 2, 1, expected)


# --- text ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (None, "-"),
        (math.nan, "-"),
        (math.inf, "-"),
        (-5, "0s"),
        (0, "0s"),
        (59.9, "59s"),
        (60, "1m00s"),
        (192, "3m12s"),
        (3599, "59m59s"),
        (3600, "1h00m"),
        (7500, "2h05m"),
        (86400, "1d00h"),
        (3 * 86400 + 4 * 3600 + 59, "3d04h"),
    ],
)
def test_format_age(seconds, expected):
    assert status.format_age(seconds) == expected


def test_table_aligns_columns_and_right_aligns_numbers():
    lines = status.table(["name", "n", "note"], [["a", "1", "x"], ["longer", "1234", ""]], right=frozenset({1}))
    assert lines == [
        "name       n  note",
        "a          1  x",
        "longer  1234",
    ]


def test_table_with_no_rows_is_its_header():
    assert status.table(["a", "bb"], []) == ["a  bb"]


def sample(*, errors_shown: int = 1, with_errors: int = 1, jobs: bool = True) -> Status:
    ingestion = GroupLag(
        "ingestion",
        "ingestion",
        ("events_plugin_ingestion",),
        (
            PartitionLag("events_plugin_ingestion", 0, 120, 0, 125, 5),
            PartitionLag("events_plugin_ingestion", 1, None, 0, 7, 7),
        ),
    )
    writer = GroupLag(
        "writer", "clickhouse-writer", ("clickhouse_events_json", "clickhouse_person"),
        (PartitionLag("clickhouse_events_json", 0, 40, 0, 42, 2),),
    )  # fmt: skip
    async_group = GroupLag("async", "async-group", ("clickhouse_events_json",), ())
    tasks = (JobTask("export_events_with_retry", 2, 1, 0, 192.0), JobTask("plugin_job", 1, 0, 1, None)) if jobs else ()
    error = PluginError(12, 2, "geoip", False, "Error: boom", "2024-05-10T12:00:00+00:00")
    return Status((ingestion, writer, async_group), tasks, PluginsStatus(3, 1, with_errors, (error,) * errors_shown))


def test_render_golden():
    assert status.render(sample()).splitlines() == (
        [
            "Kafka lag",
            "  group              topic                    partition  committed  end  lag",
            "  ingestion          events_plugin_ingestion          0        120  125    5",
            "  ingestion          events_plugin_ingestion          1          -    7    7",
            "  clickhouse-writer  clickhouse_events_json           0         40   42    2",
            "  async-group (async): no partitions, topics not found: clickhouse_events_json",
            "  total lag: ingestion (ingestion) 12, clickhouse-writer (writer) 2, async-group (async) 0",
            "",
            "Writer backlog",
            "  clickhouse-writer: 2 messages behind on 2 row topics",
            "",
            "Job queue",
            "  task                      depth  due  locked  oldest due",
            "  export_events_with_retry      2    1       0  3m12s",
            "  plugin_job                    1    0       1  -",
            "  total                         3    1       1  3m12s",
            "",
            "Plugin errors",
            "  configs: 3 enabled, 1 disabled, 1 with error",
            "  config  team  plugin  enabled  time                       message",
            "      12     2  geoip   no       2024-05-10T12:00:00+00:00  Error: boom",
        ]
    )


def test_render_empty_and_truncated_sections():
    empty = Status((), (), PluginsStatus(0, 0, 0, ()))
    text = status.render(empty)
    assert [line for line in text.splitlines() if line and not line.startswith(" ")] == [
        "Kafka lag",
        "Writer backlog",
        "Job queue",
        "Plugin errors",
    ]
    assert "  no writer group" in text and "  no jobs" in text and "0 with errors" in text
    assert "(the 2 most recent of 60 shown)" in status.render(sample(errors_shown=2, with_errors=60))
    assert not any(line.endswith(" ") for line in status.render(sample()).splitlines())


def test_render_writer_backlog_of_one_message():
    one = GroupLag("writer", "w", ("t",), (PartitionLag("t", 0, 0, 0, 1, 1),))
    assert "  w: 1 message behind on 1 row topics" in status.render(Status((one,), (), PluginsStatus(0, 0, 0, ())))


# --- JSON ------------------------------------------------------------------------------------------


def test_as_json_carries_the_same_data():
    found = status.as_json(sample())
    assert json.loads(json.dumps(found)) == found
    assert list(found) == ["kafka_lag", "writer_backlog", "job_queue", "plugins"]
    ingestion = found["kafka_lag"][0]
    assert {k: ingestion[k] for k in ("role", "group", "topics", "lag")} == {
        "role": "ingestion",
        "group": "ingestion",
        "topics": ["events_plugin_ingestion"],
        "lag": 12,
    }
    assert ingestion["partitions"][1] == {
        "topic": "events_plugin_ingestion",
        "partition": 1,
        "committed": None,
        "beginning": 0,
        "end": 7,
        "lag": 7,
    }
    assert found["kafka_lag"][2]["partitions"] == []
    assert found["writer_backlog"] == {"group": "clickhouse-writer", "lag": 2}
    assert {k: v for k, v in found["job_queue"].items() if k != "tasks"} == {
        "depth": 3,
        "due": 1,
        "locked": 1,
        "oldest_due_seconds": 192.0,
    }
    assert found["job_queue"]["tasks"][1] == {
        "task_identifier": "plugin_job",
        "depth": 1,
        "due": 0,
        "locked": 1,
        "oldest_due_seconds": None,
    }
    assert found["plugins"] == {
        "enabled": 3,
        "disabled": 1,
        "with_errors": 1,
        "errors": [
            {
                "config_id": 12,
                "team_id": 2,
                "plugin": "geoip",
                "enabled": False,
                "time": "2024-05-10T12:00:00+00:00",
                "message": "Error: boom",
            }
        ],
    }


def test_as_json_without_a_writer_group_or_jobs():
    found = status.as_json(Status((), (), PluginsStatus(0, 0, 0, ())))
    assert found["writer_backlog"] is None
    assert found["job_queue"] == {"depth": 0, "due": 0, "locked": 0, "oldest_due_seconds": None, "tasks": []}
