import pytest

from plugin_server.ingestion import teams as teams_module
from plugin_server.ingestion.event import PipelineEvent, Source
from plugin_server.ingestion.results import DeadLetter, Ok
from plugin_server.ingestion.teams import (
    UNKNOWN_TEAM_ID,
    UNKNOWN_TOKEN,
    TeamCache,
    resolve_team,
)
from plugin_server.storage.teams import Team
from plugin_server.testing.teams import InMemoryTeamStore

TEAM_A = Team(id=1, uuid="00000000-0000-4000-8000-000000000001", name="A", api_token="tok_a", anonymize_ips=False)
TEAM_B = Team(id=2, uuid="00000000-0000-4000-8000-000000000002", name="B", api_token="tok_b", anonymize_ips=True)
TTL = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db() -> InMemoryTeamStore:
    return InMemoryTeamStore(TEAM_A, TEAM_B)


@pytest.fixture
def cache(db: InMemoryTeamStore, clock: Clock) -> TeamCache:
    return TeamCache(fetch_by_tokens=db.by_tokens, fetch_by_ids=db.by_ids, ttl_seconds=TTL, clock=clock)


def event(*, token: str | None = None, team_id: int | None = None) -> PipelineEvent:
    return PipelineEvent(
        source=Source("t", 0, 0, 0),
        raw=b"{}",
        uuid="017f3a4e-4f3c-7d7e-9c6b-3a2b1c0d9e8f",
        distinct_id="d",
        event="e",
        properties={},
        now="",
        token=token,
        team_id=team_id,
    )


# --- prefetch ---------------------------------------------------------------------------------


async def test_prefetch_fetches_each_missing_key_once_sorted(cache, db):
    await cache.prefetch(["tok_b", "tok_a", "tok_b"], [2, 1, 2])
    assert db.token_calls == [["tok_a", "tok_b"]]
    assert db.id_calls == [[1, 2]]
    assert (cache.by_token_nowait("tok_a"), cache.by_token_nowait("tok_b")) == (TEAM_A, TEAM_B)
    assert (cache.by_id_nowait(1), cache.by_id_nowait(2)) == (TEAM_A, TEAM_B)


async def test_prefetch_of_nothing_queries_nothing(cache, db):
    await cache.prefetch([], [])
    await cache.prefetch(iter(()), iter(()))
    assert (db.token_calls, db.id_calls) == ([], [])


async def test_prefetch_fetches_only_what_is_not_cached(cache, db):
    await cache.prefetch(["tok_a"], [1])
    await cache.prefetch(["tok_a", "tok_b"], [1, 2])
    await cache.prefetch(["tok_a", "tok_b"], [1, 2])
    assert db.token_calls == [["tok_a"], ["tok_b"]]
    assert db.id_calls == [[1], [2]]


async def test_tokens_and_ids_are_cached_separately(cache, db):
    await cache.prefetch(["tok_a"], [])
    assert cache.by_id_nowait(1) is None
    await cache.prefetch([], [1])
    assert db.id_calls == [[1]] and cache.by_id_nowait(1) == TEAM_A


@pytest.mark.parametrize(
    ("elapsed", "refetched"),
    [(0.0, False), (TTL - 0.001, False), (TTL, True), (TTL * 10, True)],
    ids=["same-instant", "just-before-ttl", "at-ttl", "long-after"],
)
async def test_entries_expire_after_ttl(cache, db, clock, elapsed, refetched):
    await cache.prefetch(["tok_a", "tok_b"], [1])
    clock.now += elapsed
    await cache.prefetch(["tok_a", "tok_b"], [1])
    assert db.token_calls == [["tok_a", "tok_b"]] + ([["tok_a", "tok_b"]] if refetched else [])
    assert db.id_calls == [[1]] + ([[1]] if refetched else [])


async def test_only_expired_keys_are_refetched(cache, db, clock):
    await cache.prefetch(["tok_a"], [])
    clock.now += TTL / 2
    await cache.prefetch(["tok_b"], [])
    clock.now += TTL / 2  # tok_a is now TTL old, tok_b TTL/2
    await cache.prefetch(["tok_a", "tok_b"], [])
    assert db.token_calls == [["tok_a"], ["tok_b"], ["tok_a"]]


async def test_refetch_sees_changes_in_the_database(cache, db, clock):
    await cache.prefetch(["tok_a"], [])
    renamed = Team(id=1, uuid=TEAM_A.uuid, name="A2", api_token="tok_a", anonymize_ips=True)
    db.teams[0] = renamed
    await cache.prefetch(["tok_a"], [])
    assert cache.by_token_nowait("tok_a") == TEAM_A  # still cached
    clock.now += TTL
    await cache.prefetch(["tok_a"], [])
    assert cache.by_token_nowait("tok_a") == renamed


# --- negative caching -------------------------------------------------------------------------


async def test_unknown_token_and_id_are_cached_until_ttl(cache, db, clock):
    await cache.prefetch(["tok_nope"], [99])
    assert (cache.by_token_nowait("tok_nope"), cache.by_id_nowait(99)) == (None, None)
    for _ in range(3):
        await cache.prefetch(["tok_nope"], [99])
    assert (db.token_calls, db.id_calls) == ([["tok_nope"]], [[99]])

    db.teams.append(Team(id=99, uuid="u", name="late", api_token="tok_nope", anonymize_ips=False))
    clock.now += TTL
    await cache.prefetch(["tok_nope"], [99])
    assert (db.token_calls, db.id_calls) == ([["tok_nope"]] * 2, [[99]] * 2)
    assert cache.by_token_nowait("tok_nope").id == 99
    assert cache.by_id_nowait(99).name == "late"


async def test_lookups_without_prefetch_find_nothing_and_query_nothing(cache, db):
    assert (cache.by_token_nowait("tok_a"), cache.by_id_nowait(1)) == (None, None)
    assert (db.token_calls, db.id_calls) == ([], [])


# --- eviction ---------------------------------------------------------------------------------


async def test_oldest_entries_are_evicted_beyond_max_cached(cache, db, monkeypatch):
    monkeypatch.setattr(teams_module, "MAX_CACHED", 3)
    for token in ("t1", "t2", "t3", "t4"):
        await cache.prefetch([token], [])
    assert db.token_calls == [["t1"], ["t2"], ["t3"], ["t4"]]
    await cache.prefetch(["t2", "t3", "t4"], [])  # still cached
    assert len(db.token_calls) == 4
    await cache.prefetch(["t1"], [])  # evicted: queried again, and t2 goes
    await cache.prefetch(["t3", "t4"], [])
    assert db.token_calls[4:] == [["t1"]]
    await cache.prefetch(["t2"], [])
    assert db.token_calls[5:] == [["t2"]]


async def test_one_prefetch_larger_than_max_keeps_the_last(cache, db, monkeypatch):
    monkeypatch.setattr(teams_module, "MAX_CACHED", 2)
    await cache.prefetch(["tok_b", "tok_a", "zz"], [1, 2, 3])
    # keys are fetched sorted, so the last two stored are kept
    await cache.prefetch(["tok_b", "zz"], [2, 3])
    assert db.token_calls == [["tok_a", "tok_b", "zz"]]
    assert db.id_calls == [[1, 2, 3]]
    assert cache.by_token_nowait("tok_a") is None and cache.by_id_nowait(1) is None
    assert cache.by_token_nowait("tok_b") == TEAM_B and cache.by_id_nowait(2) == TEAM_B


async def test_refetched_entry_moves_to_the_newest_end(cache, db, clock, monkeypatch):
    monkeypatch.setattr(teams_module, "MAX_CACHED", 2)
    await cache.prefetch(["t1"], [])
    clock.now += TTL / 2
    await cache.prefetch(["t2"], [])
    clock.now += TTL / 2  # t1 expired
    await cache.prefetch(["t1"], [])  # refreshed: now newest
    await cache.prefetch(["t3"], [])  # evicts t2, the oldest
    await cache.prefetch(["t1"], [])
    assert db.token_calls == [["t1"], ["t2"], ["t1"], ["t3"]]
    await cache.prefetch(["t2"], [])
    assert db.token_calls[-1] == ["t2"]


# --- resolve_team -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "team_id", "expected"),
    [
        ("tok_a", None, TEAM_A),
        ("tok_b", None, TEAM_B),
        (None, 1, TEAM_A),
        ("tok_a", 2, TEAM_B),
        ("tok_nope", 1, TEAM_A),
        (None, 99, DeadLetter(UNKNOWN_TEAM_ID, "no team with id 99")),
        ("tok_a", 99, DeadLetter(UNKNOWN_TEAM_ID, "no team with id 99")),
        ("tok_nope", None, DeadLetter(UNKNOWN_TOKEN, "no team has this api token")),
        ("tok_uncached", None, DeadLetter(UNKNOWN_TOKEN, "no team has this api token")),
        (None, None, DeadLetter(UNKNOWN_TOKEN, "no team has this api token")),
    ],
    ids=[
        "token-a", "token-b", "team-id", "team-id-wins-over-token", "team-id-wins-over-bad-token",
        "unknown-team-id", "unknown-team-id-despite-good-token", "unknown-token", "token-never-prefetched",
        "neither",
    ],
)  # fmt: skip
async def test_resolve_team(cache, token, team_id, expected):
    await cache.prefetch(["tok_a", "tok_b", "tok_nope"], [1, 2, 99])
    original = event(token=token, team_id=team_id)
    result = resolve_team(original, cache)
    if isinstance(expected, DeadLetter):
        assert result == expected
    else:
        assert isinstance(result, Ok)
        assert (result.value.team, result.value.team_id) == (expected, expected.id)
        assert result.value.token == token  # only team and team_id change
        assert original.team is None and original.team_id == team_id  # the input is not changed
