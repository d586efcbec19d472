import pytest

from plugin_server.core.errors import (
    ConfigError,
    EmbeddedStackError,
    EngineLocked,
    PluginServerError,
    ServiceUnavailable,
    StorageError,
)
from plugin_server.core.retry import BATCH_RETRY, Backoff, is_retryable
from plugin_server.ingestion.pipeline import RetryBatch

DOWN = ServiceUnavailable("clickhouse", "connection refused")


class RetryableButForeign(Exception):
    retryable = True


class RetryableSubclass(PluginServerError):
    retryable = True


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (DOWN, True),
        (RetryBatch("normalize: x"), True),
        (RetryableSubclass(), True),
        (StorageError("kafka", "bad request"), False),
        (ConfigError(variable="V", value="v", expected="e"), False),
        (EngineLocked("/data"), False),
        (EmbeddedStackError("x"), False),
        (PluginServerError("x"), False),
        (ValueError("x"), False),
        (RetryableButForeign(), False),
        (KeyboardInterrupt(), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_is_retryable(error, retryable):
    assert is_retryable(error) is retryable


@pytest.mark.parametrize(
    ("error", "attempts", "delay"),
    [
        (DOWN, 0, 0.1),
        (DOWN, 1, 0.1),
        (DOWN, 2, 0.2),
        (DOWN, 3, 0.4),
        (DOWN, 9, 25.6),
        (DOWN, 10, 30.0),
        (DOWN, 11, 30.0),
        (DOWN, 1000, 30.0),
        (RetryBatch("x"), 4, 0.8),
        (StorageError("clickhouse", "syntax"), 1, None),
        (ValueError("x"), 1, None),
        (RetryableButForeign(), 1, None),
        (StorageError("clickhouse", "syntax"), 1000, None),
    ],
    ids=[
        "zero-attempts", "first", "second", "third", "ninth", "tenth-capped", "eleventh-capped", "thousandth-capped",
        "retry-batch", "permanent", "foreign", "foreign-retryable-flag", "permanent-late",
    ],
)  # fmt: skip
def test_batch_retry_decides(error, attempts, delay):
    result = BATCH_RETRY.decide(error, attempts)
    assert result == (pytest.approx(delay) if delay is not None else None)


def test_batch_retry_never_gives_up_by_count_and_never_waits_more_than_the_cap():
    assert BATCH_RETRY.max_attempts is None
    delays = [BATCH_RETRY.decide(DOWN, n) for n in range(1, 200)]
    assert all(d is not None and 0 < d <= BATCH_RETRY.maximum for d in delays)
    assert delays == sorted(delays)
    assert delays[-1] == BATCH_RETRY.maximum == 30.0


@pytest.mark.parametrize(
    ("policy", "attempts", "delay"),
    [
        (Backoff(initial=1, factor=3, maximum=10, max_attempts=3), 1, 1),
        (Backoff(initial=1, factor=3, maximum=10, max_attempts=3), 2, 3),
        (Backoff(initial=1, factor=3, maximum=10, max_attempts=3), 3, None),
        (Backoff(initial=1, factor=3, maximum=10, max_attempts=3), 4, None),
        (Backoff(initial=1, factor=3, maximum=5, max_attempts=None), 3, 5),
        (Backoff(initial=2, factor=1, maximum=10), 50, 2),
        (Backoff(initial=0.5, maximum=0.25), 1, 0.25),
        (Backoff(max_attempts=1), 1, None),
        (Backoff(max_attempts=0), 0, None),
    ],
    ids=[
        "first", "second", "at-max-attempts", "past-max-attempts", "capped", "constant", "cap-below-initial",
        "single-attempt", "zero-attempts-allowed",
    ],
)  # fmt: skip
def test_custom_policy(policy, attempts, delay):
    result = policy.decide(DOWN, attempts)
    assert result == (pytest.approx(delay) if delay is not None else None)


def test_max_attempts_does_not_make_permanent_errors_retryable():
    assert Backoff(max_attempts=100).decide(StorageError("x", "y"), 1) is None


@pytest.mark.parametrize("attempts", [1025, 10_000])
def test_long_outage_keeps_the_capped_delay(attempts):
    assert BATCH_RETRY.decide(DOWN, attempts) == 30.0


# -- today's schedules, pinned before they move into named policies ------------------------------

BATCH_DELAYS = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0, 30.0]
WORKER_RESTART_DELAYS = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
LOG_SHIP_DELAYS = [0.5, 1.0, 2.0, 4.0, 8.0, None, None]  # 6 flushes in all, then the entries are dropped
PLUGIN_SETUP_DELAYS = [3.0, 6.0, 12.0, 24.0, 48.0, 96.0, 192.0, 384.0, 768.0, None, None]  # 10 setups
EXPORT_DELAYS = [3.0 * 2.0 ** (n + 1) for n in range(15)] + [None, None]  # 6 s ... 98304 s, 15 retries


def test_legacy_schedules_match_the_tables():
    from plugin_server.plugins import runtime
    from plugin_server.plugins.hooks import export_retry_delay
    from plugin_server.plugins.logs import SHIP_RETRY
    from workers.pool import RESTART

    assert [BATCH_RETRY.decide(DOWN, n) for n in range(1, 13)] == pytest.approx(BATCH_DELAYS)
    assert [RESTART.decide(DOWN, n) for n in range(1, 10)] == WORKER_RESTART_DELAYS
    assert [SHIP_RETRY.decide(DOWN, n) for n in range(1, 8)] == LOG_SHIP_DELAYS
    setup = [None if n >= runtime.SETUP_ATTEMPTS else runtime.SETUP_FIRST_DELAY * 2 ** (n - 1) for n in range(1, 12)]
    assert setup == PLUGIN_SETUP_DELAYS
    assert [export_retry_delay(retries) for retries in range(17)] == EXPORT_DELAYS
