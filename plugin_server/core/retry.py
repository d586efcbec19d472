"""Named, pure retry policies: `decide(error, attempts) -> delay in seconds | None (give up)`.

Every retry delay of the server comes from one of the policies at the bottom of this module; a
caller counts its failed attempts, asks its policy, and sleeps (or schedules a job) for the
answer. Tests pin each policy's delays in a table (tests/unit/test_retry.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from plugin_server.core.errors import PluginServerError, leaves


def is_retryable(error: BaseException) -> bool:
    """Retryable errors are ours and say so; a group (concurrent tasks failed together) is
    retryable when every error in it is."""
    found = leaves(error)
    return all(isinstance(e, PluginServerError) and e.retryable for e in found)


def every_error(error: BaseException) -> bool:
    """For callers that already chose which failures are retried (a failed `setup_plugin`, a
    `RetryError` from `export_events`): the policy only counts and spaces the attempts."""
    return True


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff: after `attempts` failed tries, wait `initial * factor^(attempts-1)`
    seconds, at most `maximum`; give up on errors `retry_on` refuses, and once `max_attempts`
    tries have failed.

    `max_attempts=None` retries for as long as the caller keeps going: an ingestion batch waits out
    a ClickHouse or Kafka outage rather than dropping or dead-lettering events.
    """

    initial: float = 0.1
    factor: float = 2.0
    maximum: float = 30.0
    max_attempts: int | None = None
    retry_on: Callable[[BaseException], bool] = is_retryable

    def decide(self, error: BaseException, attempts: int) -> float | None:
        """`attempts` is how many tries already failed (1 after the first failure)."""
        if not self.retry_on(error):
            return None
        return self.delay(attempts)

    def delay(self, attempts: int) -> float | None:
        """The schedule alone, for a failure already known to be retried: seconds before the next
        try after `attempts` failed ones, None when no try is left."""
        if self.max_attempts is not None and attempts >= self.max_attempts:
            return None
        exponent = min(max(0, attempts - 1), 64)  # past the cap anyway; keeps the power finite
        return min(self.maximum, self.initial * self.factor**exponent)


# An ingestion batch whose service is down: retried without limit (dropping or dead-lettering
# events because ClickHouse was down for an hour would lose data); 0.1 s first, so a blip costs
# almost nothing, capped at 30 s so recovery is noticed within half a minute.
BATCH_RETRY = Backoff()

# An ingestion worker process that exited on its own (workers/pool.py): restarted without limit
# (the pool is the only thing that brings it back); 0.5 s first, since a crash is costlier than a
# blip, then doubling to a 30 s cap so a worker crashing at start-up does not spin.
WORKER_RESTART = Backoff(initial=0.5, factor=2.0, maximum=30.0)

# Plugin log entries whose ClickHouse flush failed (plugins/logs.py): 6 flushes 0.5 s to 8 s apart,
# 15.5 s of waiting in all, wait out a short outage; past that the entries are dropped (and
# counted) rather than piling up behind a long one. Logs are never worth holding events for.
LOG_SHIP_RETRY = Backoff(initial=0.5, max_attempts=6)

# A failed `setup_plugin` (PostHog, REFERENCE.md 6.4): 3 s * 2^(attempt-1), so 3, 6, 12, ... 768 s,
# at most 10 setups in all (about 25 minutes), then the config is disabled. Whatever failed the
# setup (the plugin's error, an outage met in meta) is retried, hence `every_error`.
PLUGIN_SETUP_RETRY = Backoff(initial=3.0, factor=2.0, maximum=math.inf, max_attempts=10, retry_on=every_error)

# An `export_events` call that raised RetryError (PostHog, REFERENCE.md 6.6): re-run as the job
# `export_events_with_retry` 3 s * 2^(retries+1) later, so 6, 12, 24, ... 98304 s, at most 15
# retries (16 calls in all), then the batch is dropped. PostHog counts retries from 0 where we
# count failed calls from 1: attempts = retries_so_far + 1, hence `initial=6` and 16 attempts.
EXPORT_RETRY = Backoff(initial=6.0, factor=2.0, maximum=math.inf, max_attempts=16, retry_on=every_error)
