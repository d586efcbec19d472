"""Named, pure retry policies: `decide(error, attempts) -> delay in seconds | None (give up)`."""

from __future__ import annotations

from dataclasses import dataclass

from plugin_server.core.errors import PluginServerError, leaves


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff for errors marked retryable; other errors are not retried.

    `max_attempts=None` retries for as long as the caller keeps going: an ingestion batch waits out
    a ClickHouse or Kafka outage rather than dropping or dead-lettering events.
    """

    initial: float = 0.1
    factor: float = 2.0
    maximum: float = 30.0
    max_attempts: int | None = None

    def decide(self, error: BaseException, attempts: int) -> float | None:
        """`attempts` is how many tries already failed (1 after the first failure)."""
        if not is_retryable(error):
            return None
        if self.max_attempts is not None and attempts >= self.max_attempts:
            return None
        exponent = min(max(0, attempts - 1), 64)  # past the cap anyway; keeps the power finite
        return min(self.maximum, self.initial * self.factor**exponent)


def is_retryable(error: BaseException) -> bool:
    """Retryable errors are ours and say so; a group (concurrent tasks failed together) is
    retryable when every error in it is."""
    found = leaves(error)
    return all(isinstance(e, PluginServerError) and e.retryable for e in found)


BATCH_RETRY = Backoff()
