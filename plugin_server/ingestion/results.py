"""Tagged results of pipeline steps. Only the runner interprets them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Ok(Generic[T]):
    value: T


@dataclass(frozen=True, slots=True)
class Drop:
    """The event is intentionally not ingested (e.g. a plugin dropped it). Counted, not kept."""

    reason: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """The event itself is invalid: it goes to the dead letter queue with the reason."""

    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Retry:
    """A dependency failed in a way that may pass: the whole batch is retried, nothing committed."""

    reason: str


StepResult = Ok[T] | Drop | DeadLetter | Retry
