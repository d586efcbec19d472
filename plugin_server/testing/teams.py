"""An in-memory stand-in for `plugin_server.storage.teams.TeamStore`, recording every query."""

from __future__ import annotations

import itertools
import secrets
import uuid

from plugin_server.storage.teams import Team


class InMemoryTeamStore:
    def __init__(self, *teams: Team) -> None:
        self.teams = list(teams)
        self.token_calls: list[list[str]] = []
        self.id_calls: list[list[int]] = []
        self._ids = itertools.count(max((t.id for t in teams), default=0) + 1)

    async def by_tokens(self, tokens: list[str]) -> list[Team]:
        self.token_calls.append(list(tokens))
        return [t for t in self.teams if t.api_token in tokens]

    async def by_ids(self, team_ids: list[int]) -> list[Team]:
        self.id_calls.append(list(team_ids))
        return [t for t in self.teams if t.id in team_ids]

    async def create(self, name: str) -> Team:
        team = Team(next(self._ids), str(uuid.uuid4()), name, "phc_" + secrets.token_urlsafe(32), False)
        self.teams.append(team)
        return team

    async def first(self) -> Team | None:
        return min(self.teams, key=lambda t: t.id, default=None)
