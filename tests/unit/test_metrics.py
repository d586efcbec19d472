"""The latency metrics: BulkHistogram exposes what a prometheus-client Histogram would, the
pipeline observes each step once per batch, plugin calls are timed and timeouts counted."""

from __future__ import annotations

import datetime as dt

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Histogram, generate_latest

from plugin_server.core import metrics
from plugin_server.ingestion.pipeline import IngestionPipeline
from plugin_server.ingestion.teams import TeamCache
from plugin_server.ops import synth
from plugin_server.plugins.chain import ChainReport, Progress, run_chain
from plugin_server.plugins.hooks import AsyncReport, run_export, run_on_event
from plugin_server.plugins.loaded import LoadedConfig
from plugin_server.plugins.logs import LogTarget, PluginLogs
from plugin_server.storage.kafka.client import Message
from plugin_server.storage.plugins import ConfigRow
from plugin_server.storage.teams import Team
from plugin_server.testing.teams import InMemoryTeamStore
from vm.sandbox import compile_plugin

NOW = dt.datetime(2023, 6, 1, 12, 0, tzinfo=dt.UTC)
TEAM = Team(id=1, uuid="00000000-0000-4000-8000-000000000001", name="A", api_token="tok_a", anonymize_ips=False)


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def exposition(registry: CollectorRegistry) -> list[str]:
    """The sample lines, names normalised, without _created (a timestamp)."""
    lines = generate_latest(registry).decode().splitlines()
    return sorted(
        line.replace("bulk_seconds", "h_seconds")
        for line in lines
        if not line.startswith("#") and "_created" not in line
    )


@pytest.mark.parametrize(
    "batches",
    [
        [[0.00005]],
        [[0.0001, 0.0001, 0.00025], [0.3, 7.0, 100.0]],  # on the bounds, and past the last one
        [[0.002] * 300, [], [0.0004, 0.02]],
    ],
)
def test_bulk_histogram_exposes_what_a_histogram_would(batches):
    buckets = metrics.PLUGIN_CALL_BUCKETS
    bulk_registry, plain_registry = CollectorRegistry(), CollectorRegistry()
    bulk = metrics.BulkHistogram(
        "bulk_seconds", "d", ["plugin_config_id", "method"], buckets=buckets, registry=bulk_registry
    )
    plain = Histogram("h_seconds", "d", ["plugin_config_id", "method"], buckets=buckets, registry=plain_registry)
    for batch in batches:
        bulk.add(("7", "process_event"), batch)
        for value in batch:
            plain.labels("7", "process_event").observe(value)
    assert exposition(bulk_registry) == exposition(plain_registry)


def test_bulk_histogram_describes_itself_like_a_histogram():
    registry = CollectorRegistry()
    metrics.BulkHistogram("x_seconds", "d", ["a"], buckets=(1.0,), registry=registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Histogram("x_seconds", "d", ["a"], registry=registry)  # the registry knows its names


def make_pipeline() -> IngestionPipeline:
    db = InMemoryTeamStore(TEAM)
    cache = TeamCache(fetch_by_tokens=db.by_tokens, fetch_by_ids=db.by_ids, ttl_seconds=60, clock=lambda: 0.0)
    return IngestionPipeline(teams=cache, tasks_per_worker=4, clock=lambda: NOW)


async def test_each_step_is_observed_once_per_batch():
    batch = [
        Message("t", 0, offset, b"k", m.value, 1_685_620_800_000)
        for offset, m in enumerate(synth.generate(token="tok_a", events=50, persons=5, seed=1, now=NOW))
    ]
    steps = ("parse", "resolve_team", "normalize", "persons_groups")  # no plugins, persons or groups configured
    before = {step: sample("ingestion_step_seconds_count", {"step": step}) for step in steps}
    await make_pipeline().process(batch)
    await make_pipeline().process(batch)
    for step in steps:
        assert sample("ingestion_step_seconds_count", {"step": step}) - before[step] == 2, step
    # steps that did not run are not observed, but exposed from the start
    assert REGISTRY.get_sample_value("ingestion_step_seconds_count", {"step": "plugins"}) is not None


def loaded(config_id: int, source: str, *, timeout: float = 5.0) -> LoadedConfig:
    instance = compile_plugin({"main.py": source}).instantiate(timeout=timeout, log=lambda kind, text: None)
    row = ConfigRow(
        config_id=config_id, team_id=1, order=0, config={}, plugin_id=1, plugin_name="t", config_schema=[], sources={}
    )
    config = LoadedConfig(row, instance, None, LogTarget(1, 1, config_id, "t"), PluginLogs(), timeout)
    config.ready = True
    return config


def event(i: int) -> dict:
    return {
        "uuid": f"00000000-0000-4000-8000-{i:012d}", "event": "e", "distinct_id": "d", "properties": {},
        "timestamp": None, "team_id": 1, "ip": None,
    }  # fmt: skip


def test_process_event_calls_are_timed_per_config():
    fast = loaded(900_001, "def process_event(event, meta):\n    return event\n")
    dropper = loaded(900_002, "def process_event(event, meta):\n    return None\n")
    after_drop = loaded(900_003, "def process_event(event, meta):\n    return event\n")
    run_chain([fast, dropper, after_drop], [event(i) for i in range(5)], Progress(), ChainReport())
    count = {c.row.config_id: sample("plugin_call_seconds_count", {"plugin_config_id": str(c.row.config_id),
             "method": "process_event"}) for c in (fast, dropper, after_drop)}  # fmt: skip
    assert count == {900_001: 5, 900_002: 5, 900_003: 0}  # a dropped event reaches no later plugin
    labels = {"plugin_config_id": "900001", "method": "process_event"}
    assert 0 < sample("plugin_call_seconds_sum", labels) < 5
    assert sample("plugin_call_seconds_bucket", {**labels, "le": "+Inf"}) == 5


def test_a_timeout_is_counted_and_timed():
    looping = loaded(900_010, "def process_event(event, meta):\n    while True:\n        pass\n", timeout=0.05)
    report = ChainReport()
    run_chain([looping], [event(1), event(2)], Progress(), report)
    assert sample("plugin_timeouts_total", {"plugin_config_id": "900010"}) == 2
    assert sample("plugin_call_seconds_sum", {"plugin_config_id": "900010", "method": "process_event"}) >= 0.1
    assert report.error_counts == {900_010: 2}


def test_on_event_and_export_events_are_timed_and_timeouts_counted():
    source = "def on_event(event, meta):\n    pass\n\ndef export_events(events, meta):\n    while True:\n        pass\n"
    config = loaded(900_020, source, timeout=0.05)
    report = AsyncReport()
    run_on_event(config, [event(1), event(2), event(3)], Progress(), report)
    run_export(config, [event(1), event(2)], Progress(), report)
    assert sample("plugin_call_seconds_count", {"plugin_config_id": "900020", "method": "on_event"}) == 3
    assert sample("plugin_call_seconds_count", {"plugin_config_id": "900020", "method": "export_events"}) == 1
    assert sample("plugin_timeouts_total", {"plugin_config_id": "900020"}) == 1
    assert report.failed == 2
