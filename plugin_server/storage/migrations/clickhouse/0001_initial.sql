-- Tables written by ingestion, with PostHog's column names (REFERENCE.md 5.1).
-- One statement per ';'-terminated block. Every statement is idempotent.

-- ReplacingMergeTree ordered by PostHog's key, which ends in the uuid: a re-delivered event
-- (same uuid, timestamp, event, distinct_id) collapses on merge and in FINAL queries.
-- non_replicated_deduplication_window lets a retried insert carrying the same
-- insert_deduplication_token be dropped by the server.
CREATE TABLE IF NOT EXISTS events
(
    uuid UUID,
    event String,
    properties String CODEC(ZSTD(3)),
    timestamp DateTime64(6, 'UTC'),
    team_id Int64,
    distinct_id String,
    elements_chain String,
    created_at DateTime64(6, 'UTC'),
    person_id UUID,
    person_properties String CODEC(ZSTD(3)),
    person_created_at DateTime64(3, 'UTC'),
    `$group_0` String,
    `$group_1` String,
    `$group_2` String,
    `$group_3` String,
    `$group_4` String,
    group0_properties String,
    group1_properties String,
    group2_properties String,
    group3_properties String,
    group4_properties String,
    group0_created_at DateTime64(3, 'UTC'),
    group1_created_at DateTime64(3, 'UTC'),
    group2_created_at DateTime64(3, 'UTC'),
    group3_created_at DateTime64(3, 'UTC'),
    group4_created_at DateTime64(3, 'UTC'),
    `$session_id` String MATERIALIZED JSONExtractString(properties, '$session_id'),
    `$window_id` String MATERIALIZED JSONExtractString(properties, '$window_id'),
    _timestamp DateTime,
    _offset UInt64,
    _partition UInt32,
    -- when the row reached ClickHouse: visibility latency is inserted_at minus the Kafka time
    inserted_at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(_timestamp)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (team_id, toDate(timestamp), event, cityHash64(distinct_id), cityHash64(uuid))
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS person
(
    id UUID,
    created_at DateTime64(3, 'UTC'),
    team_id Int64,
    properties String,
    is_identified Int8,
    is_deleted Int8 DEFAULT 0,
    version UInt64,
    _timestamp DateTime,
    _offset UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (team_id, id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS person_distinct_id2
(
    team_id Int64,
    distinct_id String,
    person_id UUID,
    is_deleted Int8,
    version Int64,
    _timestamp DateTime,
    _offset UInt64,
    _partition UInt32
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (team_id, distinct_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS groups
(
    group_type_index UInt8,
    group_key String,
    created_at DateTime64(3, 'UTC'),
    team_id Int64,
    group_properties String,
    _timestamp DateTime,
    _offset UInt64
)
ENGINE = ReplacingMergeTree(_timestamp)
ORDER BY (team_id, group_type_index, group_key)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS plugin_log_entries
(
    id UUID,
    team_id Int64,
    plugin_id Int64,
    plugin_config_id Int64,
    timestamp DateTime64(6, 'UTC'),
    source LowCardinality(String),
    type LowCardinality(String),
    message String,
    instance_id UUID,
    _timestamp DateTime,
    _offset UInt64
)
ENGINE = ReplacingMergeTree(_timestamp)
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (team_id, plugin_id, plugin_config_id, timestamp)
TTL toDateTime(timestamp) + INTERVAL 1 WEEK
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS ingestion_warnings
(
    team_id Int64,
    source LowCardinality(String),
    type String,
    details String CODEC(ZSTD(3)),
    timestamp DateTime64(6, 'UTC'),
    _timestamp DateTime,
    _offset UInt64,
    _partition UInt32
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (team_id, toHour(timestamp), type, source, timestamp)
SETTINGS non_replicated_deduplication_window = 10000;
