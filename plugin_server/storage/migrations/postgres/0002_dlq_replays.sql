-- Ledger of dead letters replayed onto the ingestion topic (plugin_server/dlq.py).
-- One row per dead letter queue position. `plugin-server dlq replay` inserts a chunk's rows with
-- ON CONFLICT DO NOTHING RETURNING in the same transaction that waits for the produce acks, so
-- the primary key is what makes a replay happen once across repeated and concurrent runs.

CREATE TABLE IF NOT EXISTS plugin_server_dlq_replays (
    topic         text NOT NULL,
    dlq_partition int NOT NULL,
    dlq_offset    bigint NOT NULL,
    replayed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, dlq_partition, dlq_offset)
);
