import pytest

from plugin_server.core.errors import (
    ConfigError,
    EmbeddedStackError,
    EngineLocked,
    PluginServerError,
    ServiceUnavailable,
    StorageError,
    leaves,
)

A, B, C, D = ValueError("a"), KeyError("b"), ServiceUnavailable("kafka", "c"), KeyboardInterrupt()


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (A, [A]),
        (D, [D]),
        (ExceptionGroup("g", [A]), [A]),
        (ExceptionGroup("g", [A, B, C]), [A, B, C]),
        (ExceptionGroup("g", [A, ExceptionGroup("inner", [B, ExceptionGroup("deep", [C])])]), [A, B, C]),
        (BaseExceptionGroup("g", [A, D]), [A, D]),
        (ExceptionGroup("g", [ExceptionGroup("x", [A]), ExceptionGroup("y", [B])]), [A, B]),
    ],
    ids=["plain", "base-exception", "group-of-one", "flat", "nested", "base-group", "siblings"],
)
def test_leaves(exc, expected):
    found = leaves(exc)
    assert len(found) == len(expected)
    assert all(f is e for f, e in zip(found, expected, strict=True))


@pytest.mark.parametrize(
    ("error", "message", "retryable"),
    [
        (ConfigError(variable="HTTP_PORT", value="x", expected="an integer"), "invalid HTTP_PORT='x': expected an integer", False),
        (ServiceUnavailable("postgres", "connection refused"), "postgres unavailable: connection refused", True),
        (StorageError("clickhouse", "Code: 62. Syntax error"), "clickhouse error: Code: 62. Syntax error", False),
        (EmbeddedStackError("redis did not start"), "redis did not start", False),
        (PluginServerError("plain"), "plain", False),
    ],
    ids=["config", "unavailable", "storage", "embedded", "base"],
)  # fmt: skip
def test_messages_and_retryable(error, message, retryable):
    assert str(error) == message
    assert error.retryable is retryable
    assert isinstance(error, PluginServerError)


def test_service_errors_keep_their_parts():
    down = ServiceUnavailable("redis", "timeout")
    refused = StorageError("kafka", "topic authorization failed")
    assert (down.service, down.detail, refused.service, refused.detail) == (
        "redis", "timeout", "kafka", "topic authorization failed"
    )  # fmt: skip


def test_config_error_keeps_parts_and_shortens_long_values():
    error = ConfigError(variable="KAFKA_HOSTS", value="h" * 250, expected="host:port")
    assert (error.variable, error.value, error.expected) == ("KAFKA_HOSTS", "h" * 250, "host:port")
    assert str(error) == f"invalid KAFKA_HOSTS={'h' * 200 + '...'!r}: expected host:port"


@pytest.mark.parametrize("value", ["a\nb", "tab\there", "quote'\"", "\x00"], ids=["newline", "tab", "quotes", "nul"])
def test_config_error_message_is_one_line(value):
    message = str(ConfigError(variable="V", value=value, expected="e"))
    assert "\n" not in message and repr(value) in message


def test_config_error_value_of_exactly_200_is_not_shortened():
    assert "..." not in str(ConfigError(variable="V", value="v" * 200, expected="e"))


def test_engine_locked_names_the_path_and_the_way_out():
    error = EngineLocked("/var/lib/ch")
    assert error.path == "/var/lib/ch"
    assert "/var/lib/ch" in str(error) and "INGESTION_SINK=kafka" in str(error)
    assert not error.retryable
