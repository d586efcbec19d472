"""Prometheus metrics of the plugin server (served on /_metrics). Names are ours; labels few."""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

# prometheus_client leaves floatToGoString unannotated: bound once here with its contract
# (a bucket bound -> its exposition label, "+Inf" included) so the call below is typed.
_go_float: Callable[[float], str] = floatToGoString

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
BATCH_RETRIES = Counter(
    "ingestion_batch_retries_total", "Batches retried after a transient failure.", ["worker", "service"]
)
SINK_FLUSH_SECONDS = Histogram("sink_flush_seconds", "Time to make a batch's rows durable.", ["sink"])
SINK_ROWS = Counter("sink_rows_total", "Rows made durable by a sink.", ["sink", "table"])
CONSUMER_LAG = Gauge("kafka_consumer_lag", "Messages not yet consumed.", ["group", "topic", "partition"])
PERSON_CACHE = Counter(
    "ingestion_person_cache_total", "Person state lookups by cache layer and result.", ["layer", "result"]
)
PERSON_CACHE_ERRORS = Counter(
    "ingestion_person_cache_errors_total", "Redis person-cache calls that failed.", ["operation"]
)
COMMITS_FAILED = Counter("kafka_commit_failed_total", "Offset commits lost to a rebalance.", ["group"])


# -- latency histograms -------------------------------------------------------------------------

# Per-batch step times: from a fraction of a millisecond (parse of a small batch) to the seconds
# a Postgres-heavy persons pass can take.
STEP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
INGESTION_STEP_SECONDS = Histogram(
    "ingestion_step_seconds", "Time one batch spent in each pipeline step or pass.", ["step"], buckets=STEP_BUCKETS
)

# Plugin calls: a trivial sandboxed call takes tens of µs; the default buckets (5 ms and up) would
# put every ordinary call in the first bucket. The top bound is above any sane TASK_TIMEOUT.
PLUGIN_CALL_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0)


class BulkHistogram(Collector):
    """A Prometheus histogram fed a list of observations at a time.

    prometheus-client's Histogram takes two locks per observation (about 1 µs, some 4% of a
    trivial sandboxed plugin call). A plugin thread instead appends each call's duration to a
    plain list it alone owns and hands the list over once per chunk: one sort and one lock per
    chunk, an append per call. Exposed exactly like a Histogram (`_bucket`, `_count`, `_sum`).
    """

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], *, buckets: Sequence[float],
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:  # fmt: skip
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._bounds = tuple(float(b) for b in buckets)
        self._les = [_go_float(b) for b in self._bounds] + ["+Inf"]
        self._lock = threading.Lock()
        # label values -> cumulative count per bound, then the total count, then the sum
        self._series: dict[tuple[str, ...], list[float]] = {}
        if registry is not None:
            registry.register(self)

    def add(self, labelvalues: tuple[str, ...], durations: list[float]) -> None:
        if not durations:
            return
        ordered = sorted(durations)
        cumulative = [bisect_right(ordered, bound) for bound in self._bounds]
        total = sum(ordered)
        with self._lock:
            series = self._series.get(labelvalues)
            if series is None:
                series = self._series[labelvalues] = [0] * (len(self._bounds) + 1) + [0.0]
            for i, count in enumerate(cumulative):
                series[i] += count
            series[-2] += len(ordered)
            series[-1] += total

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)
        with self._lock:
            snapshot = [(labels, list(series)) for labels, series in self._series.items()]
        for labels, series in snapshot:
            family.add_metric(list(labels), list(zip(self._les, series[:-1], strict=True)), series[-1])
        yield family


PLUGIN_CALL_SECONDS = BulkHistogram(
    "plugin_call_seconds",
    "Duration of plugin calls (process_event, on_event, export_events) per plugin config.",
    ["plugin_config_id", "method"],
    buckets=PLUGIN_CALL_BUCKETS,
)
PLUGIN_TIMEOUTS = Counter("plugin_timeouts_total", "Plugin calls stopped at their deadline.", ["plugin_config_id"])
