import re
from pathlib import Path

import pytest

from plugin_server.storage import migrations
from plugin_server.storage.migrations import Migration, load, split_statements

CLICKHOUSE_TABLES = ["events", "person", "person_distinct_id2", "groups", "plugin_log_entries", "ingestion_warnings"]


def test_clickhouse_file_splits_into_its_create_table_statements():
    loaded = load("clickhouse")
    assert [m.name for m in loaded][:1] == ["0001_initial"]
    statements = split_statements(loaded[0].sql)
    assert len(statements) == 6
    names = [re.match(r"CREATE TABLE IF NOT EXISTS (\w+)\s", s).group(1) for s in statements]
    assert names == CLICKHOUSE_TABLES
    for statement in statements:
        assert not statement.endswith(";")
        assert statement == statement.strip()
        assert ";" not in statement
        assert not any(line.lstrip().startswith("--") for line in statement.splitlines())
        assert "ENGINE" in statement


def test_clickhouse_inline_comment_lines_inside_a_statement_are_dropped():
    events = split_statements(load("clickhouse")[0].sql)[0]
    assert "when the row reached ClickHouse" not in events
    assert "inserted_at DateTime64(6, 'UTC') DEFAULT now64(6)" in events


@pytest.mark.parametrize("kind", ["postgres", "clickhouse"])
def test_load_returns_sql_files_in_name_order(kind):
    loaded = load(kind)
    assert loaded
    names = [m.name for m in loaded]
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    for m in loaded:
        assert isinstance(m, Migration)
        assert re.fullmatch(r"\d{4}_\w+", m.name)
        assert "CREATE TABLE IF NOT EXISTS" in m.sql


def test_postgres_schema_has_the_team_table():
    sql = load("postgres")[0].sql
    assert "CREATE TABLE IF NOT EXISTS posthog_team" in sql


class FakeResources:
    def __init__(self, root: Path) -> None:
        self.root = root

    def files(self, package: str) -> Path:
        assert package == "plugin_server.storage.migrations"
        return self.root


def test_load_sorts_files_and_ignores_other_files(tmp_path, monkeypatch):
    folder = tmp_path / "postgres"
    folder.mkdir()
    for name in ("0010_late.sql", "0002_second.sql", "README.md", "0001_first.sql", "0003_notes.sql.bak"):
        (folder / name).write_text(f"-- {name}\n", encoding="utf-8")
    monkeypatch.setattr(migrations, "resources", FakeResources(tmp_path))
    loaded = load("postgres")
    assert [m.name for m in loaded] == ["0001_first", "0002_second", "0010_late"]
    assert [m.sql for m in loaded] == ["-- 0001_first.sql\n", "-- 0002_second.sql\n", "-- 0010_late.sql\n"]


@pytest.mark.parametrize(
    ("sql", "statements"),
    [
        ("", []),
        ("   \n\n", []),
        ("-- only a comment\n  -- another\n", []),
        ("SELECT 1", ["SELECT 1"]),
        ("SELECT 1;", ["SELECT 1"]),
        ("SELECT 1;\nSELECT 2;", ["SELECT 1", "SELECT 2"]),
        ("SELECT 1;\nSELECT 2", ["SELECT 1", "SELECT 2"]),
        ("CREATE TABLE t\n(\n  a Int8\n)\nENGINE = Log;\n", ["CREATE TABLE t\n(\n  a Int8\n)\nENGINE = Log"]),
        ("-- head\nSELECT 1; \n\n-- between\n    -- indented\nSELECT 2 ;\t\n", ["SELECT 1", "SELECT 2"]),
        ("SELECT\n  -- inside\n  1;", ["SELECT\n  1"]),
        ("SELECT 1;;\n", ["SELECT 1"]),
        (";\n;\nSELECT 1;", ["SELECT 1"]),
        ("SELECT 'a;b' AS x;", ["SELECT 'a;b' AS x"]),
        ("SELECT '--' AS x;", ["SELECT '--' AS x"]),
        ("SELECT 1;\r\nSELECT 2;\r\n", ["SELECT 1", "SELECT 2"]),
    ],
    ids=[
        "empty", "blank", "comments-only", "no-semicolon", "one", "two", "tail-without-semicolon",
        "multi-line", "comments-and-whitespace", "comment-inside-statement", "double-semicolon",
        "empty-statements", "semicolon-inside-line", "dashes-not-at-line-start", "crlf",
    ],
)  # fmt: skip
def test_split_statements(sql, statements):
    result = split_statements(sql)
    assert result == statements
    assert all(s and not s.endswith(";") for s in result)
