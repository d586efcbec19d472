-- Initial schema for the plugin server (PostgreSQL 13+).
-- The migration runner wraps this file in one transaction; every statement is
-- IF NOT EXISTS so re-running it is a no-op.
-- Table and column names follow PostHog's Django models (posthog_*).
-- Nothing here maintains updated_at automatically: writers set it themselves.

CREATE TABLE IF NOT EXISTS posthog_organization (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                 varchar(64) NOT NULL,
    -- 0 none, 3 config, 6 install, 9 root
    plugins_access_level smallint NOT NULL DEFAULT 9,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS posthog_team (
    id                           serial PRIMARY KEY,
    uuid                         uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    organization_id              uuid NULL REFERENCES posthog_organization (id),
    name                         varchar(200) NOT NULL,
    api_token                    varchar(200) NOT NULL UNIQUE,
    anonymize_ips                boolean NOT NULL DEFAULT false,
    app_urls                     varchar(200)[] NOT NULL DEFAULT '{}',
    completed_snippet_onboarding boolean NOT NULL DEFAULT false,
    opt_out_capture              boolean NOT NULL DEFAULT false,
    slack_incoming_webhook       varchar(500) NULL,
    session_recording_opt_in     boolean NOT NULL DEFAULT false,
    ingested_event               boolean NOT NULL DEFAULT false,
    timezone                     varchar(240) NOT NULL DEFAULT 'UTC',
    person_processing_opt_out    boolean NULL,
    -- No posthog_project table here, so no FK.
    project_id                   bigint NULL,
    created_at                   timestamptz NOT NULL DEFAULT now(),
    updated_at                   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS posthog_person (
    id                         bigserial PRIMARY KEY,
    uuid                       uuid NOT NULL,
    created_at                 timestamptz NOT NULL,
    team_id                    integer NOT NULL REFERENCES posthog_team (id),
    properties                 jsonb NOT NULL DEFAULT '{}',
    properties_last_updated_at jsonb NOT NULL DEFAULT '{}',
    properties_last_operation  jsonb NULL,
    is_user_id                 integer NULL,
    is_identified              boolean NOT NULL DEFAULT false,
    -- NULL is read as 0; updates do COALESCE(version, 0) + 1.
    version                    bigint NULL,
    CONSTRAINT posthog_person_team_id_uuid_key UNIQUE (team_id, uuid)
);
CREATE INDEX IF NOT EXISTS posthog_person_team_id_idx ON posthog_person (team_id);

CREATE TABLE IF NOT EXISTS posthog_persondistinctid (
    id          bigserial PRIMARY KEY,
    team_id     integer NOT NULL REFERENCES posthog_team (id),
    -- No ON DELETE CASCADE (as in PostHog): deleting a person that still owns
    -- distinct ids must fail, which is how a merge detects a concurrent add.
    -- Checked immediately by default; SET CONSTRAINTS ... DEFERRED is possible.
    person_id   bigint NOT NULL REFERENCES posthog_person (id)
                    DEFERRABLE INITIALLY IMMEDIATE,
    distinct_id varchar(400) NOT NULL,
    version     bigint NULL,
    CONSTRAINT posthog_persondistinctid_team_id_distinct_id_key UNIQUE (team_id, distinct_id)
);
CREATE INDEX IF NOT EXISTS posthog_persondistinctid_person_id_idx
    ON posthog_persondistinctid (person_id);

CREATE TABLE IF NOT EXISTS posthog_grouptypemapping (
    id               serial PRIMARY KEY,
    team_id          integer NOT NULL REFERENCES posthog_team (id),
    group_type       varchar(400) NOT NULL,
    group_type_index integer NOT NULL,
    name_singular    varchar(400) NULL,
    name_plural      varchar(400) NULL,
    -- MAX_GROUP_TYPES_PER_TEAM = 5. Both uniques must stay non-deferrable:
    -- inserts rely on a bare ON CONFLICT DO NOTHING covering either one.
    CONSTRAINT group_type_index_is_less_than_or_equal_max
        CHECK (group_type_index >= 0 AND group_type_index <= 4),
    CONSTRAINT unique_group_types_for_team UNIQUE (team_id, group_type),
    CONSTRAINT unique_event_column_indexes_for_team UNIQUE (team_id, group_type_index)
);

CREATE TABLE IF NOT EXISTS posthog_group (
    id                         serial PRIMARY KEY,
    team_id                    integer NOT NULL REFERENCES posthog_team (id),
    group_key                  varchar(400) NOT NULL,
    group_type_index           integer NOT NULL,
    group_properties           jsonb NOT NULL DEFAULT '{}',
    created_at                 timestamptz NOT NULL,
    properties_last_updated_at jsonb NOT NULL DEFAULT '{}',
    properties_last_operation  jsonb NOT NULL DEFAULT '{}',
    version                    bigint NOT NULL,
    CONSTRAINT unique_team_group_key_group_type_index
        UNIQUE (team_id, group_key, group_type_index)
);

CREATE TABLE IF NOT EXISTS posthog_plugin (
    id              serial PRIMARY KEY,
    organization_id uuid NULL REFERENCES posthog_organization (id),
    -- 'local' | 'custom' | 'repository' | 'source'
    plugin_type     varchar(200) NULL,
    is_global       boolean NOT NULL DEFAULT false,
    is_preinstalled boolean NOT NULL DEFAULT false,
    is_stateless    boolean NULL DEFAULT false,
    name            varchar(200) NULL,
    description     text NULL,
    url             varchar(800) NULL,
    tag             varchar(200) NULL,
    config_schema   jsonb NOT NULL DEFAULT '{}',
    archive         bytea NULL,
    source          text NULL,
    from_json       boolean NOT NULL DEFAULT false,
    from_web        boolean NOT NULL DEFAULT false,
    error           jsonb NULL,
    capabilities    jsonb NOT NULL DEFAULT '{}',
    metrics         jsonb NULL DEFAULT '{}',
    public_jobs     jsonb NULL DEFAULT '{}',
    log_level       smallint NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS posthog_pluginconfig (
    id         serial PRIMARY KEY,
    team_id    integer NOT NULL REFERENCES posthog_team (id),
    plugin_id  integer NOT NULL REFERENCES posthog_plugin (id),
    enabled    boolean NOT NULL DEFAULT false,
    "order"    integer NOT NULL DEFAULT 0,
    config     jsonb NOT NULL DEFAULT '{}',
    error      jsonb NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS posthog_pluginconfig_team_id_enabled_idx
    ON posthog_pluginconfig (team_id, enabled);

CREATE TABLE IF NOT EXISTS posthog_pluginsourcefile (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    plugin_id  integer NOT NULL REFERENCES posthog_plugin (id),
    filename   varchar(200) NOT NULL,
    source     text NULL,
    transpiled text NULL,
    -- 'LOCKED' | 'TRANSPILED' | 'ERROR' | NULL
    status     varchar(20) NULL,
    error      text NULL,
    updated_at timestamptz NULL,
    CONSTRAINT unique_filename_for_plugin UNIQUE (plugin_id, filename)
);

CREATE TABLE IF NOT EXISTS posthog_pluginstorage (
    id               serial PRIMARY KEY,
    plugin_config_id integer NOT NULL REFERENCES posthog_pluginconfig (id),
    key              varchar(200) NOT NULL,
    value            text NULL,
    CONSTRAINT posthog_unique_plugin_storage_key UNIQUE (plugin_config_id, key)
);

CREATE TABLE IF NOT EXISTS posthog_pluginattachment (
    id               serial PRIMARY KEY,
    team_id          integer NULL REFERENCES posthog_team (id),
    plugin_config_id integer NULL REFERENCES posthog_pluginconfig (id),
    key              varchar(200) NOT NULL,
    content_type     varchar(200) NOT NULL,
    file_name        varchar(200) NOT NULL,
    file_size        integer NOT NULL,
    contents         bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS posthog_pluginattachment_plugin_config_id_idx
    ON posthog_pluginattachment (plugin_config_id);

CREATE TABLE IF NOT EXISTS posthog_pluginlogentry (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Deliberately no FKs: an append-only log must neither slow down the hot
    -- write path nor block deleting teams, plugins or configs.
    team_id          integer NOT NULL,
    plugin_id        integer NOT NULL,
    plugin_config_id integer NOT NULL,
    timestamp        timestamptz NOT NULL DEFAULT now(),
    -- source: SYSTEM | PLUGIN | CONSOLE; type: DEBUG | LOG | INFO | WARN | ERROR
    source           varchar(20) NOT NULL,
    type             varchar(20) NOT NULL,
    message          text NOT NULL,
    instance_id      uuid NOT NULL
);
CREATE INDEX IF NOT EXISTS posthog_pluginlogentry_plugin_config_id_timestamp_idx
    ON posthog_pluginlogentry (plugin_config_id, timestamp);

-- Job queue (our own table, modelled on graphile_worker.jobs and procrastinate)
-- instead of graphile_worker's schema and its PL/pgSQL functions.
-- Workers claim jobs with SELECT ... FOR UPDATE SKIP LOCKED and set locked_at/locked_by.
CREATE TABLE IF NOT EXISTS plugin_server_jobs (
    id              bigserial PRIMARY KEY,
    queue_name      text NOT NULL DEFAULT 'default',
    task_identifier text NOT NULL,
    payload         jsonb NOT NULL DEFAULT '{}',
    priority        integer NOT NULL DEFAULT 0,
    run_at          timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    max_attempts    integer NOT NULL DEFAULT 25,
    last_error      text NULL,
    -- Optional de-duplication key; NULLs never conflict with each other.
    key             text NULL UNIQUE,
    locked_at       timestamptz NULL,
    locked_by       text NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS plugin_server_jobs_fetch_idx
    ON plugin_server_jobs (queue_name, run_at)
    WHERE locked_at IS NULL;
