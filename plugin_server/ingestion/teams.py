"""Step 2: resolve the team of an event by token (or trusted team_id), through a TTL cache.

Postgres is the truth. The cache is filled once per batch for every token and team id the batch
names (`prefetch`: one round trip), then the per-event step is a dictionary look-up. Unknown
tokens are cached too, so a flood of bad tokens does not become a flood of queries.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable

from plugin_server.core.bounded import remember
from plugin_server.ingestion.event import PipelineEvent
from plugin_server.ingestion.results import DeadLetter, Ok
from plugin_server.storage.teams import Team

UNKNOWN_TOKEN = "unknown_token"
UNKNOWN_TEAM_ID = "unknown_team_id"
# Teams cached at most; beyond this the oldest entries are evicted (a dict keeps insertion order).
MAX_CACHED = 100_000

FetchByTokens = Callable[[list[str]], Awaitable[list[Team]]]
FetchByIds = Callable[[list[int]], Awaitable[list[Team]]]


class TeamCache:
    """Teams by token and by id, each entry (found or not) kept for `ttl_seconds`."""

    def __init__(
        self,
        *,
        fetch_by_tokens: FetchByTokens,
        fetch_by_ids: FetchByIds,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch_by_tokens = fetch_by_tokens
        self._fetch_by_ids = fetch_by_ids
        self._ttl = ttl_seconds
        self._clock = clock
        self._by_token: dict[str, tuple[float, Team | None]] = {}
        self._by_id: dict[int, tuple[float, Team | None]] = {}

    def _fresh(self, entry: tuple[float, Team | None] | None) -> bool:
        return entry is not None and self._clock() - entry[0] < self._ttl

    async def prefetch(self, tokens: Iterable[str], team_ids: Iterable[int]) -> None:
        missing_tokens = sorted({t for t in tokens if not self._fresh(self._by_token.get(t))})
        missing_ids = sorted({i for i in team_ids if not self._fresh(self._by_id.get(i))})
        now = self._clock()
        if missing_tokens:
            found = {team.api_token: team for team in await self._fetch_by_tokens(missing_tokens)}
            for token in missing_tokens:
                remember(self._by_token, token, (now, found.get(token)), MAX_CACHED)
        if missing_ids:
            found_ids = {team.id: team for team in await self._fetch_by_ids(missing_ids)}
            for team_id in missing_ids:
                remember(self._by_id, team_id, (now, found_ids.get(team_id)), MAX_CACHED)

    def by_token_nowait(self, token: str) -> Team | None:
        entry = self._by_token.get(token)
        return entry[1] if entry else None

    def by_id_nowait(self, team_id: int) -> Team | None:
        entry = self._by_id.get(team_id)
        return entry[1] if entry else None


def resolve_team(event: PipelineEvent, cache: TeamCache) -> Ok[PipelineEvent] | DeadLetter:
    """A trusted team_id wins over the token (internally produced events carry one)."""
    if event.team_id is not None:
        team = cache.by_id_nowait(event.team_id)
        if team is None:
            return DeadLetter(UNKNOWN_TEAM_ID, f"no team with id {event.team_id}")
    else:
        team = cache.by_token_nowait(event.token or "")
        if team is None:
            return DeadLetter(UNKNOWN_TOKEN, "no team has this api token")
    return Ok(event.evolve(team=team, team_id=team.id))
