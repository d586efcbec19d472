-- Outbox of persons deleted by merges (plugin_server/storage/persons.py, `merge`).
-- The merge transaction inserts a row here as it deletes the person, so the ClickHouse tombstone
-- row can be emitted again if the batch that merged never made its rows durable (a failed flush,
-- a crash between the Postgres commit and the ClickHouse write): a later event naming the merged
-- ids finds the person's tombstones by `merged_into` and re-emits them (duplicates collapse in
-- ReplacingMergeTree). When the surviving person is itself merged away, its tombstones move to
-- the new survivor. Rows older than the retention in persons.py are removed by later merges.

CREATE TABLE IF NOT EXISTS plugin_server_person_tombstones (
    team_id       int NOT NULL,
    uuid          uuid NOT NULL,
    person_id     bigint NOT NULL,     -- the deleted posthog_person.id
    merged_into   bigint NOT NULL,     -- the posthog_person.id that now holds its distinct ids
    version       bigint NOT NULL,     -- the deleted person's last version
    is_identified boolean NOT NULL,
    created_at    timestamptz NOT NULL,
    deleted_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, uuid)
);

CREATE INDEX IF NOT EXISTS plugin_server_person_tombstones_merged_into
    ON plugin_server_person_tombstones (merged_into);
CREATE INDEX IF NOT EXISTS plugin_server_person_tombstones_deleted_at
    ON plugin_server_person_tombstones (deleted_at);
