"""Modes as data: which components a process runs and which resources they need (pure, a table)."""

import pytest

from plugin_server.app.components import MODES, plan, runnable
from plugin_server.app.config import MODES as MODE_NAMES
from plugin_server.app.config import SINKS, Settings
from plugin_server.app.resources import Need, NotOpened, Resources
from plugin_server.app.topics import row_topics
from plugin_server.core.health import ServerState
from plugin_server.storage.tables import COLUMNS

CHDB = "chdb:///var/lib/ch"
SERVER = "http://default:@ch:8123/default"
CH, PROD, PG, REDIS, PLUGINS = Need.CLICKHOUSE, Need.PRODUCER, Need.POSTGRES, Need.REDIS, Need.PLUGINS
PLUGIN_HOST = {PROD, PG, REDIS, PLUGINS}

# (mode, sink, workers, clickhouse) -> (components, the sink ingestion uses, worker processes, needs)
PLANS = {
    ("all", "direct", 1, CHDB): (("ingestion", "async", "http"), "direct", 0, {CH, *PLUGIN_HOST}),
    ("all", "kafka", 1, CHDB): (("ingestion", "writer", "async", "http"), "kafka", 0, {CH, *PLUGIN_HOST}),
    ("ingestion", "direct", 1, CHDB): (("ingestion", "http"), "direct", 0, {CH, *PLUGIN_HOST}),
    ("ingestion", "kafka", 1, CHDB): (("ingestion", "http"), "kafka", 0, PLUGIN_HOST),
    ("writer", "direct", 1, CHDB): (("writer", "http"), "direct", 0, {CH, PROD}),
    ("writer", "kafka", 1, CHDB): (("writer", "http"), "kafka", 0, {CH, PROD}),
    # Several workers on chDB: they cannot share the engine, so rows go through Kafka to a writer here.
    ("all", "direct", 3, CHDB): (("workers", "writer", "async", "http"), "kafka", 3, {CH, *PLUGIN_HOST}),
    ("all", "kafka", 3, CHDB): (("workers", "writer", "async", "http"), "kafka", 3, {CH, *PLUGIN_HOST}),
    ("ingestion", "direct", 2, CHDB): (("workers", "http"), "kafka", 2, set()),  # the children open their own
    # Several workers on a ClickHouse server: each may insert directly; the plugins' logs go by Kafka.
    ("all", "direct", 2, SERVER): (("workers", "async", "http"), "direct", 2, PLUGIN_HOST),
    ("all", "kafka", 2, SERVER): (("workers", "writer", "async", "http"), "kafka", 2, {CH, *PLUGIN_HOST}),
    ("writer", "direct", 4, SERVER): (("writer", "http"), "direct", 0, {CH, PROD}),
    # on_event / export_events alone: a ClickHouse server for its plugins' logs, never chDB
    ("async", "direct", 1, CHDB): (("async", "http"), "direct", 0, PLUGIN_HOST),
    ("async", "kafka", 1, CHDB): (("async", "http"), "kafka", 0, PLUGIN_HOST),
    ("async", "direct", 1, SERVER): (("async", "http"), "direct", 0, {CH, *PLUGIN_HOST}),
    **{(mode, sink, 1, CHDB): ((), sink, 0, set()) for mode in ("jobs", "scheduler", "api") for sink in SINKS},
}
IDS = ["-".join(map(str, c[:3])) + ("-chdb" if c[3] == CHDB else "-server") for c in sorted(PLANS)]


def settings_of(mode: str, sink: str, workers: int, clickhouse: str) -> Settings:
    return Settings.from_env(
        {
            "PLUGIN_SERVER_MODE": mode,
            "INGESTION_SINK": sink,
            "WORKER_CONCURRENCY": str(workers),
            "CLICKHOUSE_URL": clickhouse,
        }
    )


def test_table_covers_every_mode_and_sink():
    assert {(mode, sink) for mode, sink, _, _ in PLANS} == {(mode, sink) for mode in MODE_NAMES for sink in SINKS}
    assert set(MODES) == set(MODE_NAMES)


@pytest.mark.parametrize("case", sorted(PLANS), ids=IDS)
def test_plan(case):
    p = plan(settings_of(*case))
    names, sink, workers, needs = PLANS[case]
    assert (p.names, p.deployment.sink, p.deployment.workers, p.needs) == (names, sink, workers, frozenset(needs))


@pytest.mark.parametrize("case", sorted(PLANS), ids=IDS)
def test_every_component_builds_from_exactly_the_resources_it_names(case):
    """Building actors does no I/O, so it runs here with stand-ins for what the plan opens; a
    component that reaches for anything else gets NotOpened, and the plan's table is wrong."""
    settings = settings_of(*case)
    p = plan(settings)
    opened = {need: object() for need in p.needs}
    resources = Resources(
        settings=settings,
        deployment=p.deployment,
        state=ServerState(max_stale_seconds=1),
        _clickhouse=opened.get(CH),
        _producer=opened.get(PROD),
        _postgres=opened.get(PG),
        _redis=opened.get(REDIS),
        _runtime=opened.get(PLUGINS),
    )
    for component in p.components:
        actors = component.build(resources)
        assert actors and not any(actor.stopped.is_set() for actor in actors)
        # every consumer reports its health; the HTTP server is the one actor without a consumer
        assert all(actor.statuses for actor in actors) == (component.name != "http")


def test_a_resource_not_named_is_refused_with_the_fix():
    resources = Resources(settings=Settings(), deployment=plan(Settings()).deployment, state=ServerState(1))
    with pytest.raises(NotOpened, match="Need.POSTGRES"):
        _ = resources.postgres


@pytest.mark.parametrize("mode", MODE_NAMES)
def test_runnable_modes_are_the_ones_that_run_something(mode):
    for sink in SINKS:
        for workers in (1, 3):
            p = plan(Settings(plugin_server_mode=mode, ingestion_sink=sink, worker_concurrency=workers))
            assert bool(p.components) == runnable(mode)
            assert not p.components or p.names[-1] == "http"  # every runnable mode serves its health


def test_stages_stop_ingestion_before_the_writer_and_the_hooks_last():
    p = plan(settings_of("all", "kafka", 1, CHDB))
    stages = [c.stage for c in p.components]
    assert stages == sorted(stages) and len(set(stages)) == len(stages)


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
