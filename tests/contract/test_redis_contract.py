"""One behaviour suite for Redis as its users use it: the adapter on the real server and the
in-memory fake. Keys with a time to live in batches (the shared person-state cache), strings and
the commands `meta.cache` sends, answered as redis-py answers them, and the reload channel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
import trio

from plugin_server.core.errors import ServiceUnavailable, StorageError
from plugin_server.storage.redis import Redis, open_redis
from plugin_server.testing.redis import InMemoryRedis


@dataclass
class Subject:
    redis: Redis | InMemoryRedis
    prefix: str  # the real server is shared by the session: every key of a test starts with this

    def k(self, name: str) -> str:
        return self.prefix + name

    async def command(self, name: str, key: str, *args):
        return await self.redis.command(name, self.k(key), *args)


@asynccontextmanager
async def real_redis(services, unique: str) -> AsyncIterator[Subject]:
    async with open_redis(services.redis_url) as redis:
        yield Subject(redis, f"contract-{unique}:")


@asynccontextmanager
async def fake_redis(services, unique: str) -> AsyncIterator[Subject]:
    yield Subject(InMemoryRedis(), f"contract-{unique}:")


@pytest.fixture(params=[real_redis, fake_redis], ids=["redis", "in-memory"])
async def subject(request, aio, services, unique):
    async with request.param(services, unique) as opened:
        with trio.fail_after(30):
            yield opened


async def refused(call) -> str:
    with pytest.raises(StorageError) as raised:
        await call
    assert not raised.value.retryable
    return str(raised.value)


# -- strings and keys --------------------------------------------------------------------------------


async def test_strings_are_bytes_and_a_set_replaces_the_value(subject):
    s, r = subject, subject.redis
    assert await r.get(s.k("s")) is None
    await r.set(s.k("s"), b"\x00\xff")
    assert await r.get(s.k("s")) == b"\x00\xff"
    await r.set(s.k("s"), "ü")
    assert await r.get(s.k("s")) == "ü".encode()


async def test_keys_expire_after_their_time_to_live_and_a_plain_set_clears_it(subject):
    s, r = subject, subject.redis
    await r.set(s.k("short"), b"1", ttl_seconds=0.2)
    await r.set(s.k("kept"), b"1", ttl_seconds=0.2)
    await r.set(s.k("kept"), b"2")
    await r.set_many({s.k("m1"): b"1", s.k("m2"): b"2"}, ttl_seconds=0.2)
    assert await r.mget([s.k("short"), s.k("m1"), s.k("m2")]) == [b"1", b"1", b"2"]
    await trio.sleep(0.4)
    assert await r.mget([s.k("short"), s.k("kept"), s.k("m1"), s.k("m2")]) == [None, b"2", None, None]


@pytest.mark.parametrize("ttl", [0, -1, 0.0004])
async def test_a_time_to_live_under_a_millisecond_is_refused_and_nothing_changes(subject, ttl):
    s, r = subject, subject.redis
    await r.set(s.k("k"), b"old")
    assert "invalid expire time" in await refused(r.set(s.k("k"), b"new", ttl_seconds=ttl))
    assert "invalid expire time" in await refused(r.set_many({s.k("k"): b"new", s.k("j"): b"j"}, ttl_seconds=ttl))
    assert await r.mget([s.k("k"), s.k("j")]) == [b"old", None]


async def test_mget_answers_in_order_with_none_for_missing_keys_and_lists(subject):
    s, r = subject, subject.redis
    await r.set_many({s.k("a"): b"A", s.k("b"): b"B"}, ttl_seconds=60)
    await s.command("lpush", "list", "x")
    assert await r.mget([s.k("b"), s.k("missing"), s.k("a"), s.k("list"), s.k("a")]) == [b"B", None, b"A", None, b"A"]
    assert await r.mget([]) == []
    await r.set_many({}, ttl_seconds=60)


async def test_delete_counts_the_keys_it_removed(subject):
    s, r = subject, subject.redis
    await r.set(s.k("a"), b"1")
    await s.command("lpush", "list", "x")
    assert await r.delete(s.k("a"), s.k("a"), s.k("list"), s.k("missing")) == 2
    assert await r.mget([s.k("a"), s.k("list")]) == [None, None]
    assert "wrong number of arguments" in await refused(r.delete())


async def test_string_commands_on_a_list_are_wrongtype_and_a_set_replaces_the_list(subject):
    s, r = subject, subject.redis
    await s.command("lpush", "list", "x")
    assert "WRONGTYPE" in await refused(r.get(s.k("list")))
    assert "WRONGTYPE" in await refused(s.command("incr", "list"))
    await r.set(s.k("list"), b"now a string")
    assert await r.get(s.k("list")) == b"now a string"
    assert "WRONGTYPE" in await refused(s.command("lpush", "list", "x"))
    for command, args in (("lrange", (0, -1)), ("llen", ()), ("lpop", (1,)), ("lrem", (0, "x"))):
        assert "WRONGTYPE" in await refused(s.command(command, "list", *args))


# -- meta.cache's commands ---------------------------------------------------------------------------


async def test_incr_counts_from_zero_and_keeps_the_time_to_live(subject):
    s, r = subject, subject.redis
    assert [await s.command("incr", "n") for _ in range(3)] == [1, 2, 3]
    await r.set(s.k("t"), b"-5", ttl_seconds=0.2)
    assert await s.command("incr", "t") == -4
    await trio.sleep(0.4)
    assert await r.get(s.k("t")) is None


@pytest.mark.parametrize("stored", [b" 5", b"+5", b"01", b"-0", b"1e3", b"abc", b"\xff", b"", b"99999999999999999999"])
async def test_incr_refuses_what_redis_does_not_read_as_an_integer(subject, stored):
    s, r = subject, subject.redis
    await r.set(s.k("n"), stored)
    assert "not an integer" in await refused(s.command("incr", "n"))
    assert await r.get(s.k("n")) == stored


async def test_incr_refuses_to_overflow(subject):
    s, r = subject, subject.redis
    await r.set(s.k("n"), b"9223372036854775807")
    assert "overflow" in await refused(s.command("incr", "n"))
    await r.set(s.k("n"), b"-9223372036854775808")
    assert await s.command("incr", "n") == -9223372036854775807


async def test_pexpire_sets_a_time_to_live_or_deletes_at_zero(subject):
    s, r = subject, subject.redis
    assert await s.command("pexpire", "missing", 1000) is False
    await r.set(s.k("a"), b"1")
    await r.set(s.k("b"), b"1")
    assert await s.command("pexpire", "a", 200) is True
    assert await s.command("pexpire", "b", 0) is True
    assert await r.mget([s.k("a"), s.k("b")]) == [b"1", None]
    await trio.sleep(0.4)
    assert await r.get(s.k("a")) is None
    for bad in (1.5, "abc"):
        assert "not an integer" in await refused(s.command("pexpire", "a", bad))


async def test_lists_push_to_the_head_and_read_by_inclusive_ranges(subject):
    s = subject
    assert await s.command("lpush", "l", "a", "b") == 2
    assert await s.command("lpush", "l", "c", 5, 1.5, b"\x00") == 6
    assert await s.command("llen", "l") == 6
    assert await s.command("lrange", "l", 0, -1) == [b"\x00", b"1.5", b"5", b"c", b"b", b"a"]
    cases = {(1, 1): [b"1.5"], (-2, -1): [b"b", b"a"], (-100, 100): None, (4, 2): [], (6, 9): [], (0, -7): []}
    for (start, stop), expected in cases.items():
        got = await s.command("lrange", "l", start, stop)
        assert got == (expected if expected is not None else [b"\x00", b"1.5", b"5", b"c", b"b", b"a"]), (start, stop)
    assert await s.command("lrange", "missing", 0, -1) == [] and await s.command("llen", "missing") == 0
    assert "wrong number of arguments" in await refused(s.command("lpush", "l"))
    assert "not an integer" in await refused(s.command("lrange", "l", "a", 1))


async def test_lpop_pops_one_or_count_and_an_emptied_list_is_gone(subject):
    s, r = subject, subject.redis
    await s.command("lpush", "l", "a", "b", "c")
    assert await s.command("lpop", "l") == b"c"
    assert await s.command("lpop", "l", 0) == []
    assert await s.command("lpop", "l", 5) == [b"b", b"a"]
    assert await s.command("lpop", "l", 1) is None and await s.command("lpop", "l") is None
    assert await r.get(s.k("l")) is None  # no empty list stays behind
    for bad in (-1, "x"):
        assert "must be positive" in await refused(s.command("lpop", "l", bad))


async def test_lrem_removes_from_the_head_the_tail_or_everywhere(subject):
    s, r = subject, subject.redis
    await s.command("lpush", "l", "a", "c", "a", "b", "a")  # [a, b, a, c, a]
    assert await s.command("lrem", "l", -1, "a") == 1
    assert await s.command("lrange", "l", 0, -1) == [b"a", b"b", b"a", b"c"]
    assert await s.command("lrem", "l", 1, "a") == 1
    assert await s.command("lrange", "l", 0, -1) == [b"b", b"a", b"c"]
    assert await s.command("lrem", "l", 0, "z") == 0 and await s.command("lrem", "missing", 0, "a") == 0
    for element in ("b", "a", "c"):
        assert await s.command("lrem", "l", 0, element) == 1
    assert await r.get(s.k("l")) is None


async def test_unknown_commands_and_wrong_arity_are_refused(subject):
    s = subject
    assert "unknown command" in await refused(s.command("frobnicate", "x"))
    assert "wrong number of arguments" in await refused(s.command("incr", "x", "y"))
    assert "wrong number of arguments" in await refused(s.command("lrem", "x", 0))


async def test_arguments_redis_py_cannot_send_fail_before_reaching_redis(subject):
    """A bool (redis-py's DataError) and a lone surrogate (UnicodeEncodeError) are refused as bad
    data, never as an outage that would be retried for ever, and never as a raw driver exception
    (meta.cache would hand it to plugin code; the person cache would let it stop the batch)."""
    s = subject
    for bad in (True, "\ud800"):
        with pytest.raises(StorageError) as refused:
            await s.command("lpush", "l", bad)
        assert not isinstance(refused.value, ServiceUnavailable)
    assert await s.command("llen", "l") == 0


# -- the reload channel ------------------------------------------------------------------------------


async def next_message(subscription, *, within: float = 5.0) -> bytes | None:
    """The next message; the real subscription may answer None early (its own confirmation)."""
    with trio.move_on_after(within):
        while True:
            message = await subscription.next_message(timeout=0.2)
            if message is not None:
                return message
    return None


async def test_a_published_message_reaches_every_subscriber_of_its_channel(subject):
    s, r = subject, subject.redis
    channel = s.k("reload")
    assert await r.publish(channel, b"before") == 0
    async with r.subscribe(channel) as first, r.subscribe(channel) as second, r.subscribe(s.k("other")) as other:
        assert await r.publish(channel, "reload") == 2
        assert await next_message(first) == b"reload" and await next_message(second) == b"reload"
        assert await next_message(other, within=0.5) is None
        assert await first.next_message(timeout=0.1) is None
    assert await r.publish(channel, b"after") == 0


# -- outage ---------------------------------------------------------------------------------------------


@asynccontextmanager
async def unreachable_real(services) -> AsyncIterator[Redis]:
    port = services.redis_url.rsplit(":", 1)[1].split("/")[0]
    async with open_redis(services.redis_url.replace(f":{port}", ":1")) as dead:  # nothing listens on port 1
        yield dead


@asynccontextmanager
async def unreachable_fake(services) -> AsyncIterator[InMemoryRedis]:
    fake = InMemoryRedis()
    fake.unavailable = True
    yield fake


@pytest.mark.parametrize("opened", [unreachable_real, unreachable_fake], ids=["redis", "in-memory"])
async def test_every_call_to_an_unreachable_redis_is_service_unavailable(aio, services, opened):
    async with opened(services) as dead:
        calls = [
            dead.get("k"), dead.set("k", b"v", ttl_seconds=1), dead.mget(["k"]), dead.set_many({"k": b"v"}, ttl_seconds=1),
            dead.delete("k"), dead.command("incr", "k"), dead.publish("c", b"m"),
        ]  # fmt: skip
        with trio.fail_after(30):
            for call in calls:
                with pytest.raises(ServiceUnavailable) as raised:
                    await call
                assert raised.value.retryable
            with pytest.raises(ServiceUnavailable):
                async with dead.subscribe("c"):
                    pass
