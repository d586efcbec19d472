"""/_metrics of an in-process server, scraped while events flow through a plugin: the families the
dashboard and the alerts use are there, with values that follow what happened."""

from __future__ import annotations

import datetime as dt
import json

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from plugin_server.app.server import Server
from plugin_server.ingestion.pipeline import STEPS
from plugin_server.ops import synth
from plugin_server.storage.jobs import JobQueue
from plugin_server.storage.kafka.client import Record
from plugin_server.storage.kafka.producer import open_producer
from plugin_server.storage.plugins import PluginStore
from plugin_server.storage.postgres import open_postgres
from tests.integration.test_server import prepare

EVENTS = 40
PLUGIN = "def process_event(event, meta):\n    event['properties']['scraped'] = True\n    return event\n"
JOB_TASK = "test_metrics_scrape"


class Scrape:
    """One /_metrics response: its family names, and each sample by name and labels."""

    def __init__(self, text: str) -> None:
        families = list(text_string_to_metric_families(text))
        self.families = {family.name for family in families}
        self.samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in families
            for sample in family.samples
        }

    def __call__(self, name: str, **labels: str) -> float:
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def total(self, name: str) -> float:
        return sum(v for (sample, _), v in self.samples.items() if sample == name)


async def scrape(port: int) -> Scrape:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"http://127.0.0.1:{port}/_metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


async def test_metrics_are_scraped_with_sensible_values(aio, settings, team, services):
    await prepare(settings)
    async with open_postgres(services.database_url, max_size=1) as pg:
        _, config_id = await PluginStore(pg=pg).install(
            team_id=team["id"], name="scraped", description="", url="", config_schema=[], capabilities={},
            sources={"main.py": PLUGIN, "plugin.json": json.dumps({"name": "scraped"})}, config={}, order=0,
        )  # fmt: skip
        # due an hour ago: nothing runs jobs yet, so the monitor must report it
        job_id = await JobQueue(pg=pg).enqueue(JOB_TASK, {}, run_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    messages = list(
        synth.generate(token=team["api_token"], events=EVENTS, persons=5, seed=11, now=dt.datetime.now(dt.UTC))
    )
    garbage = list(synth.garbage(count=2, seed=12))

    server = Server(settings)
    try:
        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                handle = await nursery.start(server.run)
                before = await scrape(handle.http_port)
                async with open_producer(hosts=settings.kafka_hosts, client_id="test") as producer:
                    await producer.send_batch(
                        Record(settings.kafka_consumption_topic, m.value, m.key) for m in messages
                    )
                    await producer.send_batch(Record(settings.kafka_consumption_topic, g) for g in garbage)
                while True:
                    after = await scrape(handle.http_port)
                    ingested = after("ingestion_events_ingested_total") - before("ingestion_events_ingested_total")
                    dead = after.total("ingestion_events_dead_lettered_total") - before.total(
                        "ingestion_events_dead_lettered_total"
                    )
                    if ingested >= EVENTS and dead >= len(garbage):
                        break
                    await trio.sleep(0.1)
                server.request_stop()
    finally:
        async with open_postgres(services.database_url, max_size=1) as pg:
            await pg.execute("DELETE FROM plugin_server_jobs WHERE id = $1", job_id)
            await pg.execute("UPDATE posthog_pluginconfig SET enabled = false WHERE id = $1", config_id)

    def delta(name: str, **labels: str) -> float:
        return after(name, **labels) - before(name, **labels)

    # what already existed
    assert delta("ingestion_events_ingested_total") == EVENTS  # exactly once each
    assert delta("ingestion_messages_consumed_total") >= EVENTS + len(garbage)
    assert (
        after.total("ingestion_events_dead_lettered_total") - before.total("ingestion_events_dead_lettered_total") == 2
    )
    assert delta("ingestion_batch_seconds_count", worker="ingestion") >= 1
    assert delta("sink_flush_seconds_count", sink="direct") >= 1
    lag = {dict(labels)["partition"] for (name, labels), _ in after.samples.items() if name == "kafka_consumer_lag"
           and dict(labels)["group"] == settings.kafka_consumer_group}  # fmt: skip
    assert lag == {"0", "1", "2", "3"}  # per partition (prepare makes 4)
    assert {"kafka_consumer_lag", "ingestion_person_cache", "ingestion_batch_size"} <= after.families
    assert after.total("ingestion_person_cache_total") > before.total("ingestion_person_cache_total")

    # per-step latency: every step observed once per batch (at least as many as batches timed so far)
    batches = delta("ingestion_batch_seconds_count", worker="ingestion")
    for step in STEPS:
        count = delta("ingestion_step_seconds_count", step=step)
        assert count >= batches, step
        assert delta("ingestion_step_seconds_bucket", step=step, le="+Inf") == count, step
        assert 0 < delta("ingestion_step_seconds_sum", step=step) < 60, step

    # per-plugin latency: one call per event for the team's config, and no timeouts
    labels = {"plugin_config_id": str(config_id), "method": "process_event"}
    assert after("plugin_call_seconds_count", **labels) == EVENTS
    assert after("plugin_call_seconds_bucket", **labels, le="+Inf") == EVENTS
    assert 0 < after("plugin_call_seconds_sum", **labels) < EVENTS
    assert "plugin_timeouts" in after.families
    assert after("plugin_timeouts_total", plugin_config_id=str(config_id)) == 0

    # the job queue, as the monitor read it when the server started
    assert after("jobs_queue_depth") >= 1
    assert after("jobs_queue_oldest_age_seconds") >= 3500

    # the plugin families the dashboard uses are exposed before anything fails
    for family in (
        "plugin_errors",
        "plugin_configs_disabled",
        "plugin_abandoned_threads",
        "plugin_log_entries_dropped",
    ):
        assert family in after.families, family
