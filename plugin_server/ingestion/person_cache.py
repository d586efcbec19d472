"""Person-state caches: an in-process LRU and a Redis cache shared by every process.

Both hold the parsed property state of a person at one version, keyed by person id. Neither is
ever trusted on its own: each batch still asks Postgres (one round trip) which person every
distinct id belongs to and at which version, telling it the versions the caches hold; Postgres
then sends the property columns only for persons whose version differs. So a cache can save
sending and decoding a person's properties, but can never make an event see stale properties,
whatever other processes wrote meanwhile, and a flushed or unreachable Redis only costs reads.

- `StateCache` (in-process): persons this process read or wrote recently.
- `SharedStates` (Redis): the same for persons any process wrote, so a restarted worker, or the
  one that takes over a partition after a rebalance, does not reread every person in full.
  Redis failures are logged and counted, never raised: a cache outage must not stop ingestion.

Keys: `person-state:<person id>` -> orjson `[version, properties, properties_last_operation]`
and `person-of:<team id>:<distinct id>` -> person id; both expire after `SHARED_TTL_SECONDS`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TypeVar

from plugin_server.core import jsonx, logs, metrics
from plugin_server.core.bounded import remember
from plugin_server.core.errors import PluginServerError
from plugin_server.ingestion.person_properties import PropertyState
from plugin_server.storage.redis import RedisKeysLike

log = logs.get(__name__)

Key = tuple[int, str]  # (team id, distinct id)
Held = dict[int, tuple[int, PropertyState]]  # person id -> (version, state)
T = TypeVar("T")

# A day: long enough to outlive restarts and rebalances, short enough that persons nobody sees
# any more leave Redis without an eviction policy.
SHARED_TTL_SECONDS = 24 * 3600
# How many entries this process remembers having put in Redis, to skip rewriting them.
SHARED_LEDGER_SIZE = 200_000
# An entry this process put in Redis is rewritten after this long even if unchanged, so entries
# of persons that stay active never expire, and a flushed Redis refills.
SHARED_REFRESH_SECONDS = 600.0


class StateCache:
    """Parsed property states of persons this process wrote or read, by person id and version.
    Bounded (least recently used goes)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._states: Held = {}
        self._person_of: dict[Key, int] = {}

    def get(self, person_id: int, version: int) -> PropertyState | None:
        held = self._states.get(person_id)
        return held[1] if held is not None and held[0] == version else None

    def held_for(self, keys: Iterable[Key]) -> tuple[Held, list[Key]]:
        """The states held for the persons these distinct ids last belonged to, and the keys
        whose person this cache does not know."""
        held: Held = {}
        unknown = []
        for key in keys:
            person_id = self._person_of.get(key)
            state = self._states.get(person_id) if person_id is not None else None
            if person_id is None or state is None:
                unknown.append(key)
            else:
                held[person_id] = state
        return held, unknown

    def put(self, person_id: int, version: int, state: PropertyState, keys: Iterable[Key]) -> None:
        remember(self._states, person_id, (version, state), self._capacity)
        for key in keys:
            remember(self._person_of, key, person_id, self._capacity)


def _state_key(person_id: int) -> str:
    return f"person-state:{person_id}"


def _person_of_key(key: Key) -> str:
    return f"person-of:{key[0]}:{key[1]}"


def encode_state(version: int, state: PropertyState) -> bytes:
    properties, _, operations = state.to_columns()
    return jsonx.dumps([version, properties, operations])


def decode_state(raw: bytes) -> tuple[int, PropertyState] | None:
    """None for anything that is not what `encode_state` wrote (a cache entry is never trusted)."""
    try:
        version, properties, operations = jsonx.loads(raw)
    except (ValueError, TypeError):
        return None
    if not isinstance(version, int) or not isinstance(properties, dict) or not isinstance(operations, dict):
        return None
    return version, PropertyState.from_columns(properties, None, operations)


class SharedStates:
    """The Redis cache. `lookup` and `store` never raise for Redis trouble (see the module doc)."""

    def __init__(self, *, redis: RedisKeysLike, ttl_seconds: float = SHARED_TTL_SECONDS) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        # What this process put in Redis, and when (time.monotonic()):
        self._stored: dict[int, tuple[int, float]] = {}  # person id -> (version, when)
        self._mapped: dict[Key, tuple[int, float]] = {}  # distinct id -> (person id, when)

    @staticmethod
    def _fresh(entry: tuple[int, float] | None, value: int, now: float) -> bool:
        return entry is not None and entry[0] == value and now - entry[1] < SHARED_REFRESH_SECONDS

    async def lookup(self, keys: list[Key]) -> Held:
        """States Redis holds for the persons of these distinct ids (two round trips at most)."""
        if not keys:
            return {}
        try:
            ids = await self._redis.mget([_person_of_key(k) for k in keys])
            person_ids = sorted({int(i) for i in ids if i is not None and i.isdigit()})
            raws = await self._redis.mget([_state_key(p) for p in person_ids])
        except PluginServerError as exc:
            return self._failed("lookup", exc, {})
        held: Held = {}
        for person_id, raw in zip(person_ids, raws, strict=True):
            decoded = decode_state(raw) if raw is not None else None
            if decoded is not None:
                held[person_id] = decoded
        metrics.PERSON_CACHE.labels("shared", "hit").inc(len(held))
        metrics.PERSON_CACHE.labels("shared", "miss").inc(len(keys) - len(held))
        return held

    async def store(self, persons: Iterable[tuple[int, int, PropertyState, list[Key]]]) -> None:
        """Put (person id, version, state, its distinct ids) that Postgres now has; skips what
        this process already put there at that version."""
        now = time.monotonic()
        items: dict[str, bytes] = {}
        stored: dict[int, tuple[int, float]] = {}
        mapped: dict[Key, tuple[int, float]] = {}
        for person_id, version, state, keys in persons:
            if not self._fresh(self._stored.get(person_id), version, now):
                items[_state_key(person_id)] = encode_state(version, state)
                stored[person_id] = (version, now)
            for key in keys:
                if not self._fresh(self._mapped.get(key), person_id, now):
                    items[_person_of_key(key)] = str(person_id).encode()
                    mapped[key] = (person_id, now)
        if not items:
            return
        try:
            await self._redis.set_many(items, ttl_seconds=self._ttl)
        except PluginServerError as exc:
            self._failed("store", exc, None)
            return
        for person_id, entry in stored.items():
            remember(self._stored, person_id, entry, SHARED_LEDGER_SIZE)
        for key, entry in mapped.items():
            remember(self._mapped, key, entry, SHARED_LEDGER_SIZE)

    async def forget(self, person_ids: list[int]) -> None:
        """Persons merged away: their states can never be asked for again."""
        if not person_ids:
            return
        for person_id in person_ids:
            self._stored.pop(person_id, None)
        try:
            await self._redis.delete(*(_state_key(p) for p in person_ids))
        except PluginServerError as exc:
            self._failed("forget", exc, None)

    def _failed(self, what: str, exc: PluginServerError, result: T) -> T:
        # Nothing Redis returned is relied on, so its failures degrade to misses. The ledgers are
        # cleared because a flush or failover may have lost what they say Redis holds.
        self._stored.clear()
        self._mapped.clear()
        metrics.PERSON_CACHE_ERRORS.labels(what).inc()
        log.warning("person cache unavailable; reading persons from Postgres", operation=what, error=str(exc))
        return result
