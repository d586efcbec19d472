"""What every Kafka role shares: the messages, the translation of aiokafka's errors into ours
(here and nowhere else), and the start and guaranteed stop of an aiokafka client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import aiokafka
import aiokafka.errors
import trio
from trio_asyncio import aio_as_trio

from plugin_server.core.errors import ServiceUnavailable, StorageError

# A single capture message may be large (PostHog allows ~1 MB); fetch up to 16 MB per partition.
FETCH_MAX_PARTITION_BYTES = 16 << 20
START_TIMEOUT_SECONDS = 30.0

P = ParamSpec("P")
T = TypeVar("T")


async def bridged(fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
    """`await fn(...)` in asyncio, from trio, keeping the result's type (aio_as_trio is untyped)."""
    result: T = await aio_as_trio(fn)(*args, **kwargs)
    return result


@dataclass(frozen=True, slots=True)
class Message:
    """One consumed Kafka message: what the pipeline needs and where it came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class Record:
    """One message to produce."""

    topic: str
    value: bytes
    key: bytes | None = None


class CommitFailed(Exception):
    """The group rebalanced before we could commit; the new owner re-reads those messages."""


def translate(exc: BaseException, what: str) -> Exception:
    if isinstance(exc, aiokafka.errors.CommitFailedError | aiokafka.errors.RebalanceInProgressError):
        return CommitFailed(str(exc))
    if isinstance(exc, aiokafka.errors.KafkaError) and not getattr(exc, "retriable", False):
        if isinstance(exc, aiokafka.errors.KafkaConnectionError | aiokafka.errors.KafkaTimeoutError):
            return ServiceUnavailable("kafka", f"{what}: {exc!r}")
        return StorageError("kafka", f"{what}: {exc!r}")
    return ServiceUnavailable("kafka", f"{what}: {exc!r}")


TRANSLATED = (aiokafka.errors.KafkaError, OSError, asyncio.TimeoutError)


@asynccontextmanager
async def started(make: Callable[[], Any], what: str) -> AsyncIterator[Any]:
    """An aiokafka client made and started inside asyncio, and always stopped on the way out."""

    async def start() -> Any:
        client = make()
        try:
            await client.start()
        except BaseException:
            await client.stop()
            raise
        return client

    try:
        with trio.fail_after(START_TIMEOUT_SECONDS):
            client = await aio_as_trio(start)()
    except trio.TooSlowError as exc:
        raise ServiceUnavailable("kafka", f"{what} did not start within {START_TIMEOUT_SECONDS}s") from exc
    except TRANSLATED as exc:
        raise translate(exc, f"{what} start") from exc
    try:
        yield client
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(10):
            await aio_as_trio(client.stop)()


async def partitions_of(consumer: aiokafka.AIOKafkaConsumer, topic: str) -> list[aiokafka.TopicPartition]:
    """Every partition of `topic` (none if it does not exist), asked of the cluster's metadata:
    a consumer without a subscription knows no topics of its own. asyncio side."""
    metadata = await consumer._client.fetch_all_metadata()
    return [aiokafka.TopicPartition(topic, p) for p in sorted(metadata.partitions_for_topic(topic) or ())]
