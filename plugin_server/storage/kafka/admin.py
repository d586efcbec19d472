"""Topics: create the missing ones, delete the ones a run made."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import trio
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from plugin_server.core.errors import ServiceUnavailable
from plugin_server.storage.kafka import client
from plugin_server.storage.kafka.client import TRANSLATED, bridged, translate

T = TypeVar("T")


async def _admin(hosts: str, what: str, operation: Callable[[AIOKafkaAdminClient], Awaitable[T]]) -> T:
    """`await operation(admin)` with a started admin client, always closed, within the start deadline."""

    async def run() -> T:
        admin = AIOKafkaAdminClient(bootstrap_servers=hosts, client_id="plugin-server-admin")
        await admin.start()
        try:
            return await operation(admin)
        finally:
            await admin.close()

    try:
        with trio.fail_after(client.START_TIMEOUT_SECONDS):
            return await bridged(run)
    except trio.TooSlowError as exc:
        raise ServiceUnavailable("kafka", f"{what} timed out") from exc
    except TRANSLATED as exc:
        raise translate(exc, what) from exc


async def ensure_topics(*, hosts: str, topics: Sequence[str], partitions: int) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""

    async def create(admin: AIOKafkaAdminClient) -> list[str]:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            await admin.create_topics(
                [NewTopic(name=t, num_partitions=partitions, replication_factor=1) for t in missing]
            )
        return missing

    return await _admin(hosts, "create topics", create)


async def delete_topics(*, hosts: str, topics: Sequence[str]) -> list[str]:
    """Delete those of `topics` that exist, and their messages; returns the names deleted."""

    async def delete(admin: AIOKafkaAdminClient) -> list[str]:
        existing = set(await admin.list_topics())
        present = [t for t in topics if t in existing]
        if present:
            await admin.delete_topics(present)
        return present

    return await _admin(hosts, "delete topics", delete)
