import pytest

from plugin_server.app.config import MODES, SINKS, Settings
from plugin_server.app.server import RUNNABLE_MODES, Plan, plan
from plugin_server.app.topics import row_topics
from plugin_server.storage.tables import COLUMNS

CHDB = "chdb:///var/lib/ch"
SERVER = "http://default:@ch:8123/default"

# (mode, sink, workers, clickhouse) -> Plan
PLANS = {
    ("all", "direct", 1, CHDB): Plan(
        ingestion=True, workers=0, sink="direct", writer=False, opens_clickhouse=True, async_handlers=True
    ),
    ("all", "kafka", 1, CHDB): Plan(
        ingestion=True, workers=0, sink="kafka", writer=True, opens_clickhouse=True, async_handlers=True
    ),
    ("ingestion", "direct", 1, CHDB): Plan(
        ingestion=True, workers=0, sink="direct", writer=False, opens_clickhouse=True
    ),
    ("ingestion", "kafka", 1, CHDB): Plan(
        ingestion=True, workers=0, sink="kafka", writer=False, opens_clickhouse=False
    ),
    ("writer", "direct", 1, CHDB): Plan(ingestion=False, workers=0, sink="direct", writer=True, opens_clickhouse=True),
    ("writer", "kafka", 1, CHDB): Plan(ingestion=False, workers=0, sink="kafka", writer=True, opens_clickhouse=True),
    # Several workers on chDB: they cannot share the engine, so rows go through Kafka to a writer here.
    ("all", "direct", 3, CHDB): Plan(
        ingestion=False, workers=3, sink="kafka", writer=True, opens_clickhouse=True, async_handlers=True
    ),
    ("all", "kafka", 3, CHDB): Plan(
        ingestion=False, workers=3, sink="kafka", writer=True, opens_clickhouse=True, async_handlers=True
    ),
    ("ingestion", "direct", 2, CHDB): Plan(
        ingestion=False, workers=2, sink="kafka", writer=False, opens_clickhouse=False
    ),
    # Several workers on a ClickHouse server: each may insert directly.
    ("all", "direct", 2, SERVER): Plan(
        ingestion=False, workers=2, sink="direct", writer=False, opens_clickhouse=False, async_handlers=True
    ),
    ("all", "kafka", 2, SERVER): Plan(
        ingestion=False, workers=2, sink="kafka", writer=True, opens_clickhouse=True, async_handlers=True
    ),
    ("writer", "direct", 4, SERVER): Plan(
        ingestion=False, workers=0, sink="direct", writer=True, opens_clickhouse=True
    ),
    # on_event / export_events alone: a ClickHouse server for its plugins' logs, never chDB
    ("async", "direct", 1, CHDB): Plan(False, 0, "direct", False, opens_clickhouse=False, async_handlers=True),
    ("async", "kafka", 1, CHDB): Plan(False, 0, "kafka", False, opens_clickhouse=False, async_handlers=True),
    ("async", "direct", 1, SERVER): Plan(False, 0, "direct", False, opens_clickhouse=True, async_handlers=True),
    **{
        (mode, sink, 1, CHDB): Plan(ingestion=False, workers=0, sink=sink, writer=False, opens_clickhouse=False)
        for mode in ("jobs", "scheduler", "api")
        for sink in SINKS
    },
}


def test_table_covers_every_mode_and_sink():
    assert {(mode, sink) for mode, sink, _, _ in PLANS} == {(mode, sink) for mode in MODES for sink in SINKS}


@pytest.mark.parametrize(
    "case",
    sorted(PLANS),
    ids=["-".join(map(str, c[:3])) + ("-chdb" if c[3] == CHDB else "-server") for c in sorted(PLANS)],
)
def test_plan(case):
    mode, sink, workers, clickhouse = case
    settings = Settings.from_env(
        {
            "PLUGIN_SERVER_MODE": mode,
            "INGESTION_SINK": sink,
            "WORKER_CONCURRENCY": str(workers),
            "CLICKHOUSE_URL": clickhouse,
        }
    )
    assert plan(settings) == PLANS[case]


@pytest.mark.parametrize("mode", MODES)
def test_runnable_modes_are_the_ones_that_run_something(mode):
    for sink in SINKS:
        for workers in (1, 3):
            p = plan(Settings(plugin_server_mode=mode, ingestion_sink=sink, worker_concurrency=workers))
            assert (p.ingestion or p.writer or p.workers > 0 or p.async_handlers) == (mode in RUNNABLE_MODES)


def test_plan_ignores_unrelated_settings():
    base = Settings(plugin_server_mode="all", ingestion_sink="kafka")
    other = base.replace(http_port=1, tasks_per_worker=3, ingestion_batch_size=7)
    assert plan(base) == plan(other)


def test_row_topics_cover_every_table_and_follow_settings():
    settings = Settings.from_env(
        {"CLICKHOUSE_JSON_EVENTS_KAFKA_TOPIC": "t_events", "CLICKHOUSE_INGESTION_WARNINGS_KAFKA_TOPIC": "t_warnings"}
    )
    assert row_topics(settings) == {
        "events": "t_events",
        "ingestion_warnings": "t_warnings",
        "person": "clickhouse_person",
        "person_distinct_id2": "clickhouse_person_distinct_id",
        "groups": "clickhouse_groups",
        "plugin_log_entries": "plugin_log_entries",
    }
    defaults = row_topics(Settings())
    assert set(defaults) == set(COLUMNS)
    assert len(set(defaults.values())) == len(defaults)
