import pytest

from plugin_server.config import MODES, SINKS, Settings
from plugin_server.ingestion.row import COLUMNS
from plugin_server.server import RUNNABLE_MODES, Plan, plan, row_topics

# (mode, sink) -> (ingestion, writer, opens_clickhouse)
PLANS = {
    ("all", "direct"): (True, False, True),
    ("all", "kafka"): (True, True, True),
    ("ingestion", "direct"): (True, False, True),
    ("ingestion", "kafka"): (True, False, False),
    ("writer", "direct"): (False, True, True),
    ("writer", "kafka"): (False, True, True),
    **{(mode, sink): (False, False, False) for mode in ("async", "jobs", "scheduler", "api") for sink in SINKS},
}


def test_table_covers_every_mode_and_sink():
    assert set(PLANS) == {(mode, sink) for mode in MODES for sink in SINKS}


@pytest.mark.parametrize(("mode", "sink"), sorted(PLANS), ids=[f"{m}-{s}" for m, s in sorted(PLANS)])
def test_plan(mode, sink):
    settings = Settings.from_env({"PLUGIN_SERVER_MODE": mode, "INGESTION_SINK": sink})
    ingestion, writer, opens_clickhouse = PLANS[(mode, sink)]
    assert plan(settings) == Plan(ingestion=ingestion, writer=writer, opens_clickhouse=opens_clickhouse)


@pytest.mark.parametrize("mode", MODES)
def test_runnable_modes_are_the_ones_that_run_something(mode):
    for sink in SINKS:
        p = plan(Settings(plugin_server_mode=mode, ingestion_sink=sink))
        assert (p.ingestion or p.writer) == (mode in RUNNABLE_MODES)


def test_plan_depends_only_on_mode_and_sink():
    base = Settings(plugin_server_mode="all", ingestion_sink="kafka")
    other = base.replace(http_port=1, tasks_per_worker=3, clickhouse_url="chdb:///tmp/x", worker_concurrency=4)
    assert plan(base) == plan(other)


def test_row_topics_cover_every_table_and_follow_settings():
    settings = Settings.from_env(
        {"CLICKHOUSE_JSON_EVENTS_KAFKA_TOPIC": "t_events", "CLICKHOUSE_INGESTION_WARNINGS_KAFKA_TOPIC": "t_warnings"}
    )
    assert row_topics(settings) == {"events": "t_events", "ingestion_warnings": "t_warnings"}
    defaults = row_topics(Settings())
    assert set(defaults) == set(COLUMNS)
    assert len(set(defaults.values())) == len(defaults)
