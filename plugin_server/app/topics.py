"""Which topic carries each ClickHouse table's rows, from the settings (the Kafka sink, the writer, tools)."""

from __future__ import annotations

from plugin_server.app.config import Settings
from plugin_server.storage.tables import (
    EVENTS_TABLE,
    GROUPS_TABLE,
    PERSON_DISTINCT_ID_TABLE,
    PERSON_TABLE,
    PLUGIN_LOG_TABLE,
    WARNINGS_TABLE,
)


def row_topics(settings: Settings) -> dict[str, str]:
    """ClickHouse table -> the topic the Kafka sink produces its rows to."""
    return {
        EVENTS_TABLE: settings.clickhouse_json_events_kafka_topic,
        WARNINGS_TABLE: settings.clickhouse_ingestion_warnings_kafka_topic,
        PERSON_TABLE: settings.clickhouse_person_kafka_topic,
        PERSON_DISTINCT_ID_TABLE: settings.clickhouse_person_distinct_id_kafka_topic,
        GROUPS_TABLE: settings.clickhouse_groups_kafka_topic,
        PLUGIN_LOG_TABLE: settings.clickhouse_plugin_log_entries_kafka_topic,
    }
