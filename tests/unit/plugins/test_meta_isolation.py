"""Nothing reachable from a config's `meta` leads to a host object: not the runtime, not a store,
client or log buffer, not another config (issue 13: "reaching a capability's internals yields
nothing of another team").

The walk follows what the sandbox's guards refuse too, as if they were missing: underscore
attributes, slots, `__dict__`, closures, bound methods' `__self__`/`__func__`, partials, defaults,
class attributes. It does not follow `__globals__` (a function's module, and from there every
module): that route is the guards' alone in-process, and the VM processes' to close."""

from __future__ import annotations

import collections
import functools
import types
from typing import Any

import pytest
import trio

from plugin_server.plugins.meta import Meta, MetaError, _facade
from plugin_server.plugins.runtime import PluginRuntime
from plugin_server.testing.jobs import InMemoryJobQueue
from plugin_server.testing.plugins import InMemoryPluginStore
from plugin_server.testing.redis import InMemoryRedis
from tests.plugins_world import Plugins, events

SOURCE = """
def setup_plugin(meta):
    meta.global_["secret"] = meta.config["secret"]
    meta.logger.info("setup " + meta.config["secret"])
    meta.storage.set("secret", meta.config["secret"])
    meta.cache.set("secret", meta.config["secret"])
    meta.jobs.send({"secret": meta.config["secret"]}).run_now()

def send(payload, meta):
    pass

jobs = {"send": send}

def process_event(event, meta):
    return event
"""
SCHEMA = [{"key": "secret", "type": "string", "required": True}]
_LEAVES = (str, bytes, int, float, bool, type(None))
_FOLLOWED = ("__self__", "__func__", "__wrapped__", "__defaults__", "__kwdefaults__", "__closure__", "__dict__")


def _edges(obj: Any) -> list[tuple[str, Any]]:
    if isinstance(obj, (types.ModuleType, type)):
        return []  # a class's attributes are followed from its instances (below)
    found: list[tuple[str, Any]] = []
    if isinstance(obj, dict):
        found += [(f"[{key!r}]", value) for key, value in obj.items()] + [(".<key>", key) for key in obj]
    elif isinstance(obj, (list, tuple, set, frozenset, collections.deque)):
        found += [(f"[{index}]", value) for index, value in enumerate(obj)]
    elif isinstance(obj, types.CellType):
        found.append((".cell_contents", obj.cell_contents))
    elif isinstance(obj, functools.partial):
        found += [(".func", obj.func), (".args", obj.args), (".keywords", obj.keywords)]
    elif isinstance(obj, property):
        found += [(".fget", obj.fget), (".fset", obj.fset)]
    for name in _FOLLOWED:
        try:
            found.append((f".{name}", object.__getattribute__(obj, name)))
        except (AttributeError, TypeError):
            pass
    for name in dir(obj):  # what plugin code sees with the guards in place
        if not name.startswith("_"):
            try:
                found.append((f".{name}", getattr(obj, name)))
            except Exception:  # noqa: BLE001, S112 - an attribute that cannot be read leads nowhere
                continue
    for cls in type(obj).__mro__:
        if cls.__module__ == "builtins":
            continue
        for name in getattr(cls, "__slots__", ()):
            try:
                found.append((f".{name}", object.__getattribute__(obj, name)))
            except AttributeError:
                pass
        found += [(f".<{cls.__name__}>.{name}", value) for name, value in vars(cls).items() if name != "__dict__"]
    return found


def reachable(root: Any) -> dict[int, tuple[Any, str]]:
    seen: dict[int, tuple[Any, str]] = {id(root): (root, "meta")}
    queue = collections.deque([(root, "meta")])
    while queue:
        obj, path = queue.popleft()
        for label, value in _edges(obj):
            if id(value) not in seen:
                seen[id(value)] = (value, path + label)
                if not isinstance(value, _LEAVES):
                    queue.append((value, path + label))
    return seen


@pytest.fixture
async def two_teams():
    store, redis, queue = InMemoryPluginStore(), InMemoryRedis(), InMemoryJobQueue()
    mine, theirs = Plugins(store, redis, team_id=1), Plugins(store, redis, team_id=2)
    mine_id = await mine.install(SOURCE, config={"secret": "MINE-s3cret"}, schema=SCHEMA)
    theirs_id = await theirs.install(SOURCE, config={"secret": "THEIRS-s3cret"}, schema=SCHEMA)
    runtime = PluginRuntime(store=store, redis=redis, logs=mine.logs, task_timeout=2.0, threads=2, jobs=queue)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime.run)
            yield runtime, runtime._loaded[mine_id], runtime._loaded[theirs_id]
            nursery.cancel_scope.cancel()


async def test_nothing_reachable_from_meta_leads_to_a_host_object(two_teams):
    runtime, mine, theirs = two_teams
    assert mine.meta.global_ == {"secret": "MINE-s3cret"}  # the setup ran and used every capability
    found = reachable(mine.meta)
    host_types = {
        f"{type(obj).__module__}.{type(obj).__qualname__}": path
        for obj, path in found.values()
        if type(obj).__module__ not in ("builtins", _facade.__name__) and type(obj) is not Meta
    }
    assert host_types == {}
    strings = [value for value, _ in found.values() if isinstance(value, str)]
    assert "MINE-s3cret" in strings  # the walk does reach the config's own data
    assert not any("THEIRS" in value for value in strings)
    for host in (runtime, mine, theirs, theirs.meta, theirs.meta.global_, runtime._logs, runtime._store):
        assert id(host) not in found


async def test_a_meta_error_carries_no_host_exception_or_frame(two_teams):
    _, mine, _ = two_teams
    with pytest.raises(MetaError) as refused:
        mine.meta.storage.set("", 1)
    error = refused.value
    assert error.__context__ is None and error.__cause__ is None
    frames = []
    tb = error.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    assert not any("meta/storage.py" in f or "meta/_bridge.py" in f for f in frames), frames


async def test_a_refusal_from_the_store_carries_no_host_exception(two_teams):
    _, mine, _ = two_teams

    def refused_by_redis() -> BaseException:
        try:
            mine.meta.cache.lpush("k", "\ud800")  # redis cannot encode it: a StorageError, refused
        except MetaError as error:
            return error
        raise AssertionError("not refused")

    error = await trio.to_thread.run_sync(refused_by_redis)
    assert str(error).startswith("cache: ") and error.__context__ is None and error.__cause__ is None


async def test_facades_are_read_only_and_name_only_public_methods(two_teams):
    _, mine, _ = two_teams
    meta = mine.meta
    with pytest.raises(AttributeError, match="read-only"):
        meta.storage.get = print
    with pytest.raises(AttributeError, match="no job named"):
        meta.jobs.missing  # noqa: B018
    assert repr(meta.storage) == "<meta.Storage>"
    for capability in (meta.storage, meta.cache, meta.logger, meta.metrics, meta.utils.cursor):
        assert all(
            isinstance(getattr(capability, name), types.MethodType) for name in dir(capability) if name[0] != "_"
        )


EXPORTER = """
def setup_plugin(meta):
    meta.config["exportEventsToIgnore"] = "$pageview"  # the plugin's own copy

def export_events(events, meta):
    meta.storage.set("exported", meta.storage.get("exported", 0) + len(events))
"""


async def test_the_host_reads_its_own_config_never_the_plugins_copy():
    """The export settings come from the validated config the host kept, not from `meta.config`,
    which the plugin may change: the host's str() of a self-similar list a plugin put there ran
    in the event loop and froze it."""
    plugins = Plugins(InMemoryPluginStore(), InMemoryRedis(), team_id=1)
    plugins.jobs = InMemoryJobQueue()
    config_id = await plugins.install(EXPORTER)
    runtime = plugins.runtime()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime.run)
            assert runtime._loaded[config_id].meta.config == {"exportEventsToIgnore": "$pageview"}
            await runtime.run_async(events(plugins, 3), plugins.jobs)
            nursery.cancel_scope.cancel()
    assert await plugins.store.storage_get(config_id, "exported") == "3"


@pytest.mark.parametrize("name", ["_store", "_redis", "_bridge", "get", "set", "anything"])
async def test_no_write_reaches_a_capability_through_its_facade(two_teams, name):
    """Not even an underscore name from host code: with a guard missing, a plugin could otherwise
    point its capability at an object of its own, which the host would then call."""
    _, mine, _ = two_teams
    decoy = object()
    for capability in (mine.meta.storage, mine.meta.cache, mine.meta.logger, mine.meta.utils.cursor):
        with pytest.raises(AttributeError, match="read-only"):
            setattr(capability, name, decoy)
        with pytest.raises(AttributeError, match="read-only"):
            delattr(capability, name)
        host = _facade.host_of(capability)
        slots = [slot for kind in type(host).__mro__ for slot in getattr(kind, "__slots__", ())]
        assert slots and all(getattr(host, slot, None) is not decoy for slot in slots)
