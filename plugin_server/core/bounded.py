"""The one bounded, most-recently-written-last map the caches and ledgers of the pipeline share."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def remember(store: MutableMapping[K, V], key: K, value: V, capacity: int) -> None:
    """Put `key` last in `store` (a dict keeps insertion order), then drop the oldest entries
    beyond `capacity`, so a cache or ledger never grows with the traffic it has seen."""
    store.pop(key, None)
    store[key] = value
    while len(store) > capacity:
        del store[next(iter(store))]
