import math

import pytest

from plugin_server.core.errors import (
    ConfigError,
    EmbeddedStackError,
    EngineLocked,
    PluginServerError,
    ServiceUnavailable,
    StorageError,
)
from plugin_server.core.retry import (
    BATCH_RETRY,
    EXPORT_RETRY,
    LOG_SHIP_RETRY,
    PLUGIN_SETUP_RETRY,
    WORKER_RESTART,
    Backoff,
    every_error,
    is_retryable,
)
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


# -- every named policy's schedule: delay after attempts 1, 2, 3, ... (None: give up) ------------
# The tables were written from the code each policy replaced (Backoff literals in workers/pool.py
# and plugins/logs.py, plugins/runtime.py's SETUP_FIRST_DELAY * 2^(attempt-1) with SETUP_ATTEMPTS,
# plugins/hooks.py's export_retry_delay) and checked against it before the switch.

SCHEDULES = {
    "batch": (BATCH_RETRY, [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0, 30.0]),
    "worker-restart": (WORKER_RESTART, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]),
    "log-ship": (LOG_SHIP_RETRY, [0.5, 1.0, 2.0, 4.0, 8.0, None, None]),  # 6 flushes, then dropped
    "plugin-setup": (
        PLUGIN_SETUP_RETRY,  # PostHog: 3 s * 2^(attempt-1), 10 setups in all, then disabled
        [3.0, 6.0, 12.0, 24.0, 48.0, 96.0, 192.0, 384.0, 768.0, None, None],
    ),
    "export": (
        EXPORT_RETRY,  # PostHog: 3 s * 2^(retries+1), at most 15 retries; attempts = retries + 1
        [6.0, 12.0, 24.0, 48.0, 96.0, 192.0, 384.0, 768.0, 1536.0, 3072.0, 6144.0, 12288.0, 24576.0, 49152.0,
         98304.0, None, None],
    ),
}  # fmt: skip


@pytest.mark.parametrize(("policy", "delays"), SCHEDULES.values(), ids=SCHEDULES.keys())
def test_schedule(policy, delays):
    assert [policy.delay(n) for n in range(1, len(delays) + 1)] == pytest.approx(delays)
    assert [policy.decide(DOWN, n) for n in range(1, len(delays) + 1)] == pytest.approx(delays)


@pytest.mark.parametrize(
    ("policy", "attempt_limit"),
    [(BATCH_RETRY, None), (WORKER_RESTART, None), (LOG_SHIP_RETRY, 6), (PLUGIN_SETUP_RETRY, 10), (EXPORT_RETRY, 16)],
    ids=SCHEDULES.keys(),
)
def test_attempt_limit(policy, attempt_limit):
    assert policy.max_attempts == attempt_limit
    if attempt_limit is not None:
        assert policy.delay(attempt_limit - 1) is not None and policy.delay(attempt_limit) is None


@pytest.mark.parametrize("retries", range(17))
def test_export_retry_is_posthogs_schedule(retries):
    """REFERENCE.md 6.6: retry n (from 0) waits 3 s * 2^(n+1); none after the 15th."""
    expected = 3.0 * 2.0 ** (retries + 1) if retries < 15 else None
    assert EXPORT_RETRY.delay(retries + 1) == expected


@pytest.mark.parametrize("attempt", range(1, 12))
def test_plugin_setup_retry_is_posthogs_schedule(attempt):
    """REFERENCE.md 6.4: 3 s * 2^(attempt-1) after a failed setup, 10 setups in all."""
    expected = 3.0 * 2 ** (attempt - 1) if attempt < 10 else None
    assert PLUGIN_SETUP_RETRY.decide(RuntimeError("plugin raised"), attempt) == expected


@pytest.mark.parametrize(
    ("policy", "error", "retried"),
    [
        (BATCH_RETRY, StorageError("clickhouse", "syntax"), False),
        (WORKER_RESTART, ValueError("x"), False),
        (LOG_SHIP_RETRY, StorageError("clickhouse", "too large"), False),
        (LOG_SHIP_RETRY, DOWN, True),
        (PLUGIN_SETUP_RETRY, StorageError("postgres", "refused"), True),  # the caller chose to retry it
        (PLUGIN_SETUP_RETRY, ValueError("plugin raised"), True),
        (EXPORT_RETRY, ValueError("RetryError"), True),
    ],
    ids=["batch-permanent", "restart-foreign", "log-permanent", "log-outage", "setup-any", "setup-foreign", "export-any"],
)  # fmt: skip
def test_which_errors_each_policy_retries(policy, error, retried):
    assert (policy.decide(error, 1) is not None) is retried


def test_uncapped_policies_stay_finite():
    assert PLUGIN_SETUP_RETRY.maximum == EXPORT_RETRY.maximum == math.inf
    assert Backoff(initial=1.0, maximum=math.inf, retry_on=every_error).delay(10_000) == 2.0**64
