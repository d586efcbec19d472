"""Plugin administration on stores handed in (the fakes here): what it writes, what it refuses
before writing anything, when it asks servers to reload, and how it reads logs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from plugin_server.plugins import admin
from plugin_server.plugins.admin import ClickHouseLogReader, PluginAdminError, ReloadChannel
from plugin_server.storage.plugins import Attachment
from plugin_server.storage.teams import Team
from plugin_server.testing.plugins import InMemoryPluginStore
from plugin_server.testing.teams import InMemoryTeamStore

SOURCE = "def process_event(event, meta):\n    return event\n"
SCHEMA = [{"key": "label", "required": True}, {"key": "file", "type": "attachment"}]


class Published:
    """Redis as the reload channel sees it: what was published where."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes | str]] = []

    async def publish(self, channel: str, message: bytes | str) -> int:
        self.messages.append((channel, message))
        return 2


class Stores:
    def __init__(self) -> None:
        self.plugins = InMemoryPluginStore()
        self.teams = InMemoryTeamStore(Team(5, "u", "team", "phc_x", False))
        self.redis = Published()
        self.reload = ReloadChannel(redis=self.redis, channel="reload-plugins")


def package(tmp_path: Path, source: str = SOURCE, schema: list | None = None, name: str = "p"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "plugin.json").write_text(json.dumps({"name": name, "config": SCHEMA if schema is None else schema}))
    (folder / "main.py").write_text(source)
    return admin.read_package(folder)


async def test_install_writes_the_plugin_and_an_enabled_config_then_asks_for_a_reload(tmp_path):
    s = Stores()
    files = [admin.attachment("file", "data.json", b"{}")]
    result = await admin.install(
        package(tmp_path), team_id=5, config={"label": "x"}, order=3, attachments=files,
        plugins=s.plugins, teams=s.teams, reload=s.reload,
    )  # fmt: skip
    assert result == {
        "plugin_id": 1, "plugin_config_id": 1, "name": "p",
        "capabilities": {"methods": ["process_event"], "scheduled_tasks": [], "jobs": []},
    }  # fmt: skip
    [row] = await s.plugins.active_configs()
    assert (row.team_id, row.order, row.config, row.plugin_name) == (5, 3, {"label": "x"}, "p")
    assert row.sources["main.py"] == SOURCE
    assert row.attachments == {"file": Attachment("file", "application/json", "data.json", b"{}")}
    assert s.redis.messages == [("reload-plugins", b"reload")]


@pytest.mark.parametrize(
    ("config", "team_id", "message"),
    [
        ({}, 5, "config: 'label' is required"),
        ({"label": "x", "other": "y"}, 5, "unknown config key 'other'"),
        ({"label": "x"}, 999, "no team with id 999"),
    ],
)
async def test_install_refuses_before_writing_or_publishing_anything(tmp_path, config, team_id, message):
    s = Stores()
    with pytest.raises(PluginAdminError, match=message):
        await admin.install(
            package(tmp_path), team_id=team_id, config=config, order=0, attachments=[],
            plugins=s.plugins, teams=s.teams, reload=s.reload,
        )  # fmt: skip
    assert s.plugins.plugins == {} and s.redis.messages == []


async def test_install_refuses_an_attachment_over_the_limit_even_one_it_did_not_build(tmp_path):
    s = Stores()
    big = Attachment("file", "application/octet-stream", "big", b"x" * (admin.MAX_ATTACHMENT_BYTES + 1))
    with pytest.raises(PluginAdminError, match="attachment 'file': larger than"):
        await admin.install(
            package(tmp_path), team_id=5, config={"label": "x"}, order=0, attachments=[big],
            plugins=s.plugins, teams=s.teams, reload=s.reload,
        )  # fmt: skip
    assert s.plugins.plugins == {}


def test_attachments_are_json_by_name_and_bounded():
    assert admin.attachment("k", "a.json", b"1").content_type == "application/json"
    assert admin.attachment("k", "a.csv", b"1").content_type == "application/octet-stream"
    with pytest.raises(PluginAdminError, match="attachment 'k': larger than 10000000 bytes"):
        admin.attachment("k", "a.json", b"x" * 10_000_001)


def test_a_bad_package_names_its_path(tmp_path):
    with pytest.raises(PluginAdminError, match=f"{tmp_path}: .*no plugin.json"):
        admin.read_package(tmp_path)


async def test_update_replaces_the_sources_records_capabilities_and_asks_for_a_reload(tmp_path):
    s = Stores()
    plugin_id, _ = await s.plugins.install(
        team_id=5, name="p", description="", url="", config_schema=[], capabilities={}, sources={"main.py": SOURCE},
        config={}, order=0,
    )  # fmt: skip
    new = "def on_event(event, meta):\n    pass\n"
    result = await admin.update(
        package(tmp_path, new, schema=[]), plugin_id=plugin_id, plugins=s.plugins, reload=s.reload
    )
    assert result == {
        "plugin_id": plugin_id, "name": "p",
        "capabilities": {"methods": ["on_event"], "scheduled_tasks": [], "jobs": []},
    }  # fmt: skip
    assert s.plugins.plugins[plugin_id].sources["main.py"] == new
    assert s.plugins.plugins[plugin_id].capabilities == result["capabilities"]
    assert s.redis.messages == [("reload-plugins", b"reload")]


async def test_update_of_an_unknown_plugin_changes_nothing(tmp_path):
    s = Stores()
    with pytest.raises(PluginAdminError, match="no plugin with id 42"):
        await admin.update(package(tmp_path), plugin_id=42, plugins=s.plugins, reload=s.reload)
    assert s.plugins.plugins == {} and s.redis.messages == []


class ClickHouseAnswering:
    """`query_json` as ClickHouse answers it: JSON lines (and a trailing newline)."""

    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows
        self.queries: list[str] = []

    async def query_json(self, sql: str) -> bytes:
        self.queries.append(sql)
        return b"".join(json.dumps(row).encode() + b"\n" for row in self.rows)


async def test_the_log_reader_asks_for_one_configs_entries_since_a_time_oldest_first():
    rows = [
        {"timestamp": "2024-06-01 12:00:00.000000", "message": "a"},
        {"timestamp": "2024-06-01 12:00:01", "message": "b"},
    ]
    clickhouse = ClickHouseAnswering(rows)
    since = dt.datetime(2024, 6, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert await ClickHouseLogReader(clickhouse=clickhouse).read(config_id=7, since=since, limit=10) == rows
    [sql] = clickhouse.queries
    assert "plugin_config_id = 7 " in sql and "LIMIT 10\n" in sql
    assert "parseDateTime64BestEffort('2024-06-01 12:00:00.000000', 6)" in sql
    assert sql.rstrip().endswith("ORDER BY timestamp")


async def test_the_log_reader_reads_from_the_start_when_no_time_is_given():
    clickhouse = ClickHouseAnswering([])
    assert await ClickHouseLogReader(clickhouse=clickhouse).read(config_id=7, since=None, limit=1) == []
    assert "'1970-01-01 00:00:00.000000'" in clickhouse.queries[0]
