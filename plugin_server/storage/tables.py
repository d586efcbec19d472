"""The ClickHouse tables we write: names, columns, and a row as it travels to them.

A row is serialized once, by whoever builds it (ingestion/row.py for events, plugins/logs.py for
plugin logs): the direct sink joins lines into an insert block, the Kafka sink produces each line
as a message and the writer joins them again. The sinks and the writer need only this module.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

EVENTS_TABLE = "events"
WARNINGS_TABLE = "ingestion_warnings"
PERSON_TABLE = "person"
PERSON_DISTINCT_ID_TABLE = "person_distinct_id2"

EVENT_COLUMNS = [
    "uuid", "event", "properties", "timestamp", "team_id", "distinct_id", "elements_chain", "created_at",
    "person_id", "person_properties", "person_created_at", "_timestamp", "_offset", "_partition",
    *(f"$group_{i}" for i in range(5)), *(f"group{i}_properties" for i in range(5)),
    *(f"group{i}_created_at" for i in range(5)),
]  # fmt: skip
GROUPS_TABLE = "groups"
PLUGIN_LOG_TABLE = "plugin_log_entries"
PLUGIN_LOG_COLUMNS = [
    "id", "team_id", "plugin_id", "plugin_config_id", "timestamp", "source", "type", "message", "instance_id",
    "_timestamp", "_offset",
]  # fmt: skip
GROUP_COLUMNS = ["group_type_index", "group_key", "created_at", "team_id", "group_properties", "_timestamp", "_offset"]
WARNING_COLUMNS = ["team_id", "source", "type", "details", "timestamp", "_timestamp", "_offset", "_partition"]
PERSON_COLUMNS = [
    "id",
    "created_at",
    "team_id",
    "properties",
    "is_identified",
    "is_deleted",
    "version",
    "_timestamp",
    "_offset",
]
PERSON_DISTINCT_ID_COLUMNS = [
    "team_id",
    "distinct_id",
    "person_id",
    "is_deleted",
    "version",
    "_timestamp",
    "_offset",
    "_partition",
]
COLUMNS = {
    GROUPS_TABLE: GROUP_COLUMNS,
    PLUGIN_LOG_TABLE: PLUGIN_LOG_COLUMNS,
    EVENTS_TABLE: EVENT_COLUMNS,
    WARNINGS_TABLE: WARNING_COLUMNS,
    PERSON_TABLE: PERSON_COLUMNS,
    PERSON_DISTINCT_ID_TABLE: PERSON_DISTINCT_ID_COLUMNS,
}

_ZERO = dt.timedelta(0)


@dataclass(frozen=True, slots=True)
class Row:
    table: str
    line: bytes  # one JSON object, no newline
    key: bytes | None = None  # Kafka key when produced (the event uuid, as PostHog)
    team_id: int | None = None  # of an events row built here (not read back from a topic)


def ch_datetime(value: dt.datetime) -> str:
    """ClickHouse DateTime64(6) text in UTC: 'YYYY-MM-DD HH:MM:SS.ffffff'."""
    if value.utcoffset() != _ZERO:
        value = value.astimezone(dt.UTC)
    return value.isoformat(sep=" ", timespec="microseconds")[:26]
