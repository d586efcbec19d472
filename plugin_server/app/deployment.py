"""The facts about this process that decide what it runs, derived from the settings once (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from plugin_server.app.config import Settings


@dataclass(frozen=True)
class Deployment:
    """The facts components decide on, derived from the settings once."""

    mode: str
    sink: str  # the sink ingestion uses, in this process or in its workers
    workers: int  # ingestion worker processes this process supervises (0: ingestion runs here, if at all)
    embedded_clickhouse: bool

    @classmethod
    def of(cls, settings: Settings) -> Deployment:
        mode = settings.plugin_server_mode
        ingests = mode in ("all", "ingestion")
        workers = settings.worker_concurrency if ingests and settings.worker_concurrency > 1 else 0
        embedded = settings.clickhouse_url.startswith("chdb:")
        # chDB admits one process: several workers on it must hand rows to a writer through Kafka.
        sink = "kafka" if workers and embedded else settings.ingestion_sink
        return cls(mode=mode, sink=sink, workers=workers, embedded_clickhouse=embedded)
