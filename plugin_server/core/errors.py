"""Errors of the plugin server. Each driver's exceptions are translated into these in its adapter.

`retryable` tells the batch runner what to do: a retryable error (a service is down, a timeout)
pauses and retries the whole batch without committing; a permanent one belongs to the event and
sends it to the dead letter queue.
"""

from __future__ import annotations


class PluginServerError(Exception):
    """Base class of every error this project raises on purpose."""

    retryable = False


class ConfigError(PluginServerError):
    """A setting has a value we cannot use. Start-up stops with exit code 2."""

    def __init__(self, *, variable: str, value: str, expected: str) -> None:
        self.variable = variable
        self.value = value
        self.expected = expected
        shown = value if len(value) <= 200 else value[:200] + "..."
        super().__init__(f"invalid {variable}={shown!r}: expected {expected}")


class ServiceUnavailable(PluginServerError):
    """A backing service (Postgres, Redis, Kafka, ClickHouse) failed in a way that may pass."""

    retryable = True

    def __init__(self, service: str, detail: str) -> None:
        self.service = service
        self.detail = detail
        super().__init__(f"{service} unavailable: {detail}")


class StorageError(PluginServerError):
    """A backing service refused a request for a reason that retrying will not fix."""

    def __init__(self, service: str, detail: str) -> None:
        self.service = service
        self.detail = detail
        super().__init__(f"{service} error: {detail}")


class EngineLocked(PluginServerError):
    """The embedded ClickHouse data directory is already open in another process."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"the embedded ClickHouse directory {path} is in use by another process; exactly one "
            "process may open it (run several workers with INGESTION_SINK=kafka and one writer)"
        )


class EmbeddedStackError(PluginServerError):
    """An embedded service could not be started or stopped."""


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (possibly nested) exception groups, or [exc] itself."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]
