"""Prometheus metrics of the plugin server (served on /_metrics). Names are ours; labels few."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_CONSUMED = Counter("ingestion_messages_consumed_total", "Kafka messages taken by ingestion workers.")
EVENTS_INGESTED = Counter("ingestion_events_ingested_total", "Events whose rows the sink confirmed durable.")
EVENTS_DROPPED = Counter("ingestion_events_dropped_total", "Events intentionally not ingested.", ["reason"])
EVENTS_DEAD_LETTERED = Counter(
    "ingestion_events_dead_lettered_total", "Events sent to the dead letter queue.", ["reason"]
)
INGESTION_WARNINGS = Counter("ingestion_warnings_total", "Ingestion warnings written.", ["type"])
BATCH_SIZE = Histogram(
    "ingestion_batch_size", "Messages per consumed batch.", buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000, 10000)
)
BATCH_SECONDS = Histogram("ingestion_batch_seconds", "Time to process, write and commit one batch.", ["worker"])
BATCH_RETRIES = Counter("ingestion_batch_retries_total", "Batches retried after a transient failure.", ["worker", "service"])
SINK_FLUSH_SECONDS = Histogram("sink_flush_seconds", "Time to make a batch's rows durable.", ["sink"])
SINK_ROWS = Counter("sink_rows_total", "Rows made durable by a sink.", ["sink", "table"])
CONSUMER_LAG = Gauge("kafka_consumer_lag", "Messages not yet consumed.", ["group", "topic", "partition"])
PERSON_CACHE = Counter(
    "ingestion_person_cache_total", "Person state lookups by cache layer and result.", ["layer", "result"]
)
PERSON_CACHE_ERRORS = Counter("ingestion_person_cache_errors_total", "Redis person-cache calls that failed.", ["operation"])
COMMITS_FAILED = Counter("kafka_commit_failed_total", "Offset commits lost to a rebalance.", ["group"])
