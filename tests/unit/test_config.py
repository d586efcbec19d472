import dataclasses

import pytest

from plugin_server.app import config
from plugin_server.app.config import LOG_LEVELS, MODES, SINKS, Settings, describe
from plugin_server.core.errors import ConfigError

FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


# --- defaults ---------------------------------------------------------------------------------


def test_empty_environ_gives_the_declared_defaults():
    settings = Settings.from_env({})
    assert settings == Settings()
    for name, f in FIELDS.items():
        assert getattr(settings, name) == f.default, name


@pytest.mark.parametrize(
    ("name", "default"),
    [
        ("plugin_server_mode", "all"),
        ("ingestion_sink", "direct"),
        ("kafka_hosts", "127.0.0.1:9092"),
        ("kafka_consumption_topic", "events_plugin_ingestion"),
        ("kafka_dead_letter_topic", "events_dead_letter_queue"),
        ("clickhouse_json_events_kafka_topic", "clickhouse_events_json"),
        ("worker_concurrency", 1),
        ("tasks_per_worker", 10),
        ("ingestion_batch_size", 2000),
        ("http_port", 6738),
        ("plugin_server_admin_token", ""),
        ("team_cache_ttl_seconds", 60.0),
        ("log_level", "info"),
        ("log_format", "json"),
    ],
    ids=lambda v: str(v),
)
def test_known_defaults(name, default):
    assert getattr(Settings.from_env({}), name) == default


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_every_default_passes_its_own_parser(name):
    f = FIELDS[name]
    assert f.metadata["parse"](str(f.default)) == f.default


def test_unrelated_environ_variables_are_ignored():
    assert Settings.from_env({"PATH": "/bin", "plugin_server_mode": "writer"}) == Settings()


# --- parsers, through the environment ---------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "raw", "value"),
    [
        ("WORKER_CONCURRENCY", "1", 1),
        ("WORKER_CONCURRENCY", "64", 64),
        ("WORKER_CONCURRENCY", " 8 ", 8),
        ("HTTP_PORT", "0", 0),
        ("HTTP_PORT", "65535", 65535),
        ("INGESTION_BATCH_WAIT_MS", "0", 0),
        ("TASKS_PER_WORKER", "10000", 10000),
    ],
    ids=["min", "max", "spaces", "port-0", "port-max", "wait-0", "tasks-max"],
)
def test_int_accepts(variable, raw, value):
    assert getattr(Settings.from_env({variable: raw}), variable.lower()) == value


@pytest.mark.parametrize(
    ("variable", "raw", "expected"),
    [
        ("WORKER_CONCURRENCY", "0", "an integer >= 1 and <= 64"),
        ("WORKER_CONCURRENCY", "65", "an integer >= 1 and <= 64"),
        ("WORKER_CONCURRENCY", "-1", "an integer >= 1 and <= 64"),
        ("WORKER_CONCURRENCY", "1.5", "an integer >= 1 and <= 64"),
        ("WORKER_CONCURRENCY", "", "an integer >= 1 and <= 64"),
        ("WORKER_CONCURRENCY", "four", "an integer >= 1 and <= 64"),
        ("HTTP_PORT", "65536", "an integer >= 0 and <= 65535"),
        ("HTTP_PORT", "-1", "an integer >= 0 and <= 65535"),
    ],
    ids=["zero", "above-max", "negative", "float", "empty", "word", "port-too-big", "port-negative"],
)
def test_int_rejects(variable, raw, expected):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({variable: raw})
    assert (info.value.variable, info.value.value, info.value.expected) == (variable, raw, expected)


@pytest.mark.parametrize(
    ("raw", "value"),
    [("0", 0.0), ("0.5", 0.5), (" 12 ", 12.0), ("1e2", 100.0), ("inf", float("inf"))],
    ids=["zero", "fraction", "spaces", "exponent", "infinity"],
)
def test_float_accepts(raw, value):
    assert Settings.from_env({"TEAM_CACHE_TTL_SECONDS": raw}).team_cache_ttl_seconds == value


@pytest.mark.parametrize(
    ("variable", "raw", "expected"),
    [
        ("TEAM_CACHE_TTL_SECONDS", "nan", "a number >= 0.0"),
        ("TEAM_CACHE_TTL_SECONDS", "NaN", "a number >= 0.0"),
        ("TEAM_CACHE_TTL_SECONDS", "-0.1", "a number >= 0.0"),
        ("TEAM_CACHE_TTL_SECONDS", "-inf", "a number >= 0.0"),
        ("TEAM_CACHE_TTL_SECONDS", "soon", "a number >= 0.0"),
        ("TEAM_CACHE_TTL_SECONDS", "", "a number >= 0.0"),
        ("HEALTHCHECK_MAX_STALE_SECONDS", "0.5", "a number >= 1.0"),
    ],
    ids=["nan", "NaN", "negative", "minus-inf", "word", "empty", "below-minimum-1"],
)
def test_float_rejects(variable, raw, expected):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({variable: raw})
    assert (info.value.variable, info.value.expected) == (variable, expected)


@pytest.mark.parametrize(
    ("variable", "raw", "value"),
    [
        ("PLUGIN_SERVER_MODE", "writer", "writer"),
        ("PLUGIN_SERVER_MODE", "WRITER", "writer"),
        ("PLUGIN_SERVER_MODE", "  Ingestion ", "ingestion"),
        ("INGESTION_SINK", "Kafka", "kafka"),
        ("LOG_LEVEL", "DEBUG", "debug"),
        ("LOG_FORMAT", "Console", "console"),
    ],
    ids=["lower", "upper", "mixed-spaces", "sink", "log-level", "log-format"],
)
def test_choice_is_case_insensitive(variable, raw, value):
    assert getattr(Settings.from_env({variable: raw}), variable.lower()) == value


@pytest.mark.parametrize(
    ("variable", "raw", "choices"),
    [
        ("PLUGIN_SERVER_MODE", "everything", MODES),
        ("PLUGIN_SERVER_MODE", "", MODES),
        ("INGESTION_SINK", "clickhouse", SINKS),
        ("LOG_LEVEL", "trace", LOG_LEVELS),
    ],
    ids=["mode", "mode-empty", "sink", "log-level"],
)
def test_choice_rejects_and_lists_the_choices(variable, raw, choices):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({variable: raw})
    assert info.value.expected == "one of " + ", ".join(choices)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        *[(s, True) for s in ("y", "yes", "t", "true", "on", "1", "TRUE", " Yes ", "On")],
        *[(s, False) for s in ("n", "no", "f", "false", "off", "0", "", "  ", "FALSE", "No")],
    ],
    ids=lambda v: repr(v),
)
def test_bool_spellings(raw, value):
    assert config._bool(raw) is value


@pytest.mark.parametrize("raw", ["2", "maybe", "yess", "-1", "none"])
def test_bool_rejects(raw):
    with pytest.raises(ValueError, match="a boolean"):
        config._bool(raw)


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("DATABASE_URL", "postgres://u:p@db.example:5432/posthog"),
        ("DATABASE_URL", "postgresql://db/posthog"),
        ("REDIS_URL", "redis://cache:6379"),
        ("REDIS_URL", "rediss://cache:6380/0"),
        ("CLICKHOUSE_URL", "http://default:@ch:8123/default"),
        ("CLICKHOUSE_URL", "https://ch.example/db"),
        ("CLICKHOUSE_URL", "chdb:///var/lib/plugin-server/clickhouse"),
        ("CLICKHOUSE_URL", "chdb://relative/dir"),
    ],
    ids=["postgres", "postgresql", "redis", "rediss", "http", "https", "chdb-absolute", "chdb-relative"],
)
def test_url_accepts(variable, raw):
    assert getattr(Settings.from_env({variable: raw}), variable.lower()) == raw


def test_url_is_stripped():
    assert Settings.from_env({"REDIS_URL": "  redis://cache:6379 \n"}).redis_url == "redis://cache:6379"


@pytest.mark.parametrize(
    ("variable", "raw", "expected"),
    [
        ("DATABASE_URL", "mysql://db/posthog", "a URL like postgres://... or postgresql://..."),
        ("DATABASE_URL", "db.example:5432", "a URL like postgres://... or postgresql://..."),
        ("DATABASE_URL", "postgres:///posthog", "a URL like postgres://... or postgresql://..."),
        ("DATABASE_URL", "postgres://db:99999/posthog", "a URL like postgres://... or postgresql://..."),
        ("DATABASE_URL", "postgres://db:port/posthog", "a URL like postgres://... or postgresql://..."),
        ("REDIS_URL", "http://cache:6379", "a URL like redis://... or rediss://..."),
        ("REDIS_URL", "", "a URL like redis://... or rediss://..."),
        ("CLICKHOUSE_URL", "ftp://ch/db", "a URL like http://... or https://... or chdb://..."),
        ("CLICKHOUSE_URL", "http://:8123/db", "a URL like http://... or https://... or chdb://..."),
        ("CLICKHOUSE_URL", "http://ch:70000/db", "a URL like http://... or https://... or chdb://..."),
    ],
    ids=[
        "wrong-scheme", "no-scheme", "no-host", "port-out-of-range", "port-not-a-number",
        "redis-wrong-scheme", "empty", "ch-wrong-scheme", "ch-no-host", "ch-bad-port",
    ],
)  # fmt: skip
def test_url_rejects(variable, raw, expected):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({variable: raw})
    assert (info.value.variable, info.value.value, info.value.expected) == (variable, raw, expected)


@pytest.mark.parametrize("raw", ["chdb://", "chdb:///", "chdb:////"])
def test_chdb_url_needs_a_data_directory(raw):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"CLICKHOUSE_URL": raw})
    assert "chdb URL with a data directory" in info.value.expected


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("kafka:9092", "kafka:9092"),
        ("kafka1:9092,kafka2:9093", "kafka1:9092,kafka2:9093"),
        (" kafka1:9092 , kafka2:9093 ,", "kafka1:9092,kafka2:9093"),
        ("[::1]:9092", "[::1]:9092"),
        ("k:1,k:65535", "k:1,k:65535"),
    ],
    ids=["one", "two", "spaces-trailing-comma", "ipv6", "port-bounds"],
)
def test_kafka_hosts_accepts_and_normalizes(raw, value):
    assert Settings.from_env({"KAFKA_HOSTS": raw}).kafka_hosts == value


@pytest.mark.parametrize(
    "raw",
    ["", " , ", "kafka", "kafka:", ":9092", "kafka:0", "kafka:65536", "kafka:port", "kafka:9092,broken", "kafka:-1"],
    ids=["empty", "only-commas", "no-port", "empty-port", "no-host", "port-0", "port-too-big", "port-word",
         "one-bad-of-two", "negative-port"],
)  # fmt: skip
def test_kafka_hosts_rejects(raw):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"KAFKA_HOSTS": raw})
    assert info.value.variable == "KAFKA_HOSTS"
    assert info.value.expected.startswith("comma-separated host:port pairs")


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("events", "events"),
        ("t1_events.plugin-ingestion", "t1_events.plugin-ingestion"),
        ("  padded  ", "padded"),
        ("x" * 249, "x" * 249),
    ],
    ids=["plain", "all-allowed-punctuation", "stripped", "249-chars"],
)
def test_topic_accepts(raw, value):
    assert Settings.from_env({"KAFKA_CONSUMPTION_TOPIC": raw}).kafka_consumption_topic == value


@pytest.mark.parametrize(
    "raw", ["", "   ", "x" * 250, "has space", "a/b", "a:b", "a,b", "a*"],
    ids=["empty", "blank", "250-chars", "space", "slash", "colon", "comma", "star"],
)  # fmt: skip
def test_topic_rejects(raw):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"KAFKA_DEAD_LETTER_TOPIC": raw})
    assert info.value.variable == "KAFKA_DEAD_LETTER_TOPIC"
    assert "Kafka topic name" in info.value.expected


@pytest.mark.parametrize(
    "raw", ["événements", "topic\u0661", ".", ".."], ids=["accent", "arabic-digit", "dot", "dotdot"]
)
def test_topic_rejects_names_kafka_rejects(raw):
    with pytest.raises(ConfigError):
        Settings.from_env({"KAFKA_CONSUMPTION_TOPIC": raw})


def test_text_fields_are_taken_verbatim():
    settings = Settings.from_env({"KAFKA_CONSUMER_GROUP": " g 1 ", "PLUGIN_SERVER_ADMIN_TOKEN": "s3cr3t"})
    assert (settings.kafka_consumer_group, settings.plugin_server_admin_token) == (" g 1 ", "s3cr3t")


# --- ConfigError ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "variable", "value", "expected"),
    [
        ({"WORKER_CONCURRENCY": "0"}, "WORKER_CONCURRENCY", "0", "an integer >= 1 and <= 64"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL", "loud", "one of debug, info, warning, error"),
        ({"HTTP_PORT": "80\n80"}, "HTTP_PORT", "80\n80", "an integer >= 0 and <= 65535"),
        (
            {"KAFKA_HOSTS": "a\r\nb"},
            "KAFKA_HOSTS",
            "a\r\nb",
            "comma-separated host:port pairs, like kafka1:9092,kafka2:9092",
        ),
    ],
    ids=["int", "choice", "newline-in-value", "crlf-in-value"],
)
def test_config_error_names_variable_value_and_expected_on_one_line(environ, variable, value, expected):
    with pytest.raises(ConfigError) as info:
        Settings.from_env(environ)
    error = info.value
    assert (error.variable, error.value, error.expected) == (variable, value, expected)
    message = str(error)
    assert "\n" not in message and "\r" not in message
    assert variable in message and repr(value) in message and expected in message


def test_config_error_shortens_a_long_value_in_the_message_but_keeps_it_whole():
    raw = "x" * 500
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"KAFKA_CONSUMPTION_TOPIC": raw})
    assert info.value.value == raw
    assert repr("x" * 200 + "...") in str(info.value)
    assert "x" * 201 not in str(info.value)


def test_first_bad_variable_is_reported():
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"HTTP_PORT": "no", "PLUGIN_SERVER_MODE": "bad"})
    # fields are read in declaration order: the mode comes first
    assert info.value.variable == "PLUGIN_SERVER_MODE"


# --- CLI-style overrides ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "overrides", "name", "value"),
    [
        ({"PLUGIN_SERVER_MODE": "writer"}, {"plugin_server_mode": "ingestion"}, "plugin_server_mode", "ingestion"),
        ({}, {"plugin_server_mode": "WRITER"}, "plugin_server_mode", "writer"),
        ({"PLUGIN_SERVER_MODE": "writer"}, {"plugin_server_mode": None}, "plugin_server_mode", "writer"),
        ({"HTTP_PORT": "80"}, {"http_port": 8080}, "http_port", 8080),
        ({"TEAM_CACHE_TTL_SECONDS": "1"}, {"team_cache_ttl_seconds": 2.5}, "team_cache_ttl_seconds", 2.5),
    ],
    ids=["mode-wins", "mode-parsed", "none-is-no-override", "int-wins", "float-wins"],
)
def test_overrides_win_over_environ(environ, overrides, name, value):
    assert getattr(Settings.from_env(environ, **overrides), name) == value


def test_bad_override_of_mode_names_the_mode_flag_even_if_environ_is_bad_too():
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"PLUGIN_SERVER_MODE": "also-bad"}, plugin_server_mode="nope")
    assert (info.value.variable, info.value.value) == ("--mode", "nope")
    assert "--mode" in str(info.value) and "PLUGIN_SERVER_MODE" not in str(info.value)


def test_bad_override_of_other_field_names_its_flag():
    with pytest.raises(ConfigError) as info:
        Settings.from_env({}, tasks_per_worker=0)
    assert (info.value.variable, info.value.value) == ("--tasks-per-worker", "0")


def test_good_override_hides_a_bad_environ_value():
    assert Settings.from_env({"PLUGIN_SERVER_MODE": "bad"}, plugin_server_mode="writer").plugin_server_mode == "writer"


def test_replace_returns_a_changed_copy():
    base = Settings()
    changed = base.replace(http_port=1)
    assert (changed.http_port, base.http_port) == (1, 6738)


# --- describe ---------------------------------------------------------------------------------


def test_describe_lists_every_field_in_order_with_help():
    rows = describe()
    assert [name for name, _, _ in rows] == [f.name.upper() for f in dataclasses.fields(Settings)]
    for name, default, help_text in rows:
        assert help_text and help_text == FIELDS[name.lower()].metadata["help"]
        assert "\n" not in help_text
        assert default


def test_describe_shows_defaults_as_text_and_empty_as_quotes():
    shown = {name: default for name, default, _ in describe()}
    assert shown["PLUGIN_SERVER_MODE"] == "all"
    assert shown["HTTP_PORT"] == "6738"
    assert shown["TEAM_CACHE_TTL_SECONDS"] == "60.0"
    assert shown["PLUGIN_SERVER_ADMIN_TOKEN"] == '""'
