"""`meta` is a public API: exactly these names are what plugins see, and every capability checks
its arguments before it touches a service."""

from __future__ import annotations

import pytest

from plugin_server.plugins.meta import Meta, MetaError
from plugin_server.plugins.meta.cache import MAX_LIST_PUSH, Cache
from plugin_server.plugins.meta.fetch import Fetch
from plugin_server.plugins.meta.jobs import Jobs
from plugin_server.plugins.meta.logger import MAX_LOG_CHARS, Logger
from plugin_server.plugins.meta.metrics import Metrics
from plugin_server.plugins.meta.storage import Storage
from plugin_server.plugins.meta.utils import Cursor, Utils
from plugin_server.storage.plugins import Attachment


class Untouchable:
    """A store or Redis that must not be reached: the argument checks come first."""

    def __getattr__(self, name):
        def reached(*args, **kwargs):
            raise AssertionError(f"{name} was reached")

        return reached


def public(obj) -> set[str]:
    return {name for name in dir(obj) if not name.startswith("_")}


def make_meta(written: list | None = None) -> Meta:
    return Meta(
        config={"label": "x", "nested": {"a": 1}},
        attachments={"file": Attachment("file", "application/json", "f.json", b"{}")},
        storage=Storage(store=Untouchable(), config_id=7),
        cache=Cache(redis=Untouchable(), config_id=7),
        logger=Logger(write=lambda *entry: (written if written is not None else []).append(entry)),
        metrics=Metrics(config_id=7),
        fetch=Fetch(allow_private=False),
        jobs=Jobs(names=frozenset({"send"}), queue=None, team_id=2, config_id=7),
        utils=Utils(cursor=Cursor(store=Untouchable(), config_id=7)),
    )


def test_the_names_plugins_can_see():
    meta = make_meta()
    assert public(meta) == {
        "attachments", "cache", "config", "fetch", "global_", "jobs", "logger", "metrics", "storage", "utils",
    }  # fmt: skip
    assert public(meta.storage) == {"get", "set", "delete", "del_"}
    assert public(meta.cache) == {"set", "get", "incr", "expire", "lpush", "lrange", "llen", "lpop", "lrem"}
    assert public(meta.logger) == {"debug", "info", "log", "warn", "error"}
    assert public(meta.metrics) == {"increment", "max", "min"}
    assert public(meta.fetch) == set()
    assert public(meta.utils) == {"cursor"}
    assert public(meta.utils.cursor) == {"init", "increment"}
    assert public(meta.jobs.send({"a": 1})) == {"run_now", "run_in", "run_at"}


def test_config_and_attachments_are_the_plugins_own_plain_copies():
    config = {"label": "x", "nested": {"a": 1}}
    meta = make_meta()
    assert meta.config == config and meta.global_ == {}
    meta.config["nested"]["a"] = 2
    assert make_meta().config["nested"]["a"] == 1
    assert meta.attachments == {"file": {"content_type": "application/json", "file_name": "f.json", "contents": b"{}"}}


@pytest.mark.parametrize("key", ["", None, 5, "k" * 201])
def test_storage_cache_and_cursor_refuse_bad_keys_before_any_io(key):
    meta = make_meta()
    for call in (
        lambda: meta.storage.get(key),
        lambda: meta.storage.set(key, 1),
        lambda: meta.storage.delete(key),
        lambda: meta.cache.get(key),
        lambda: meta.cache.set(key, 1),
        lambda: meta.cache.incr(key),
        lambda: meta.utils.cursor.increment(key),
    ):
        with pytest.raises(MetaError, match="a key must be"):
            call()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.storage.set("k", object()), "value is not JSON"),
        (lambda m: m.storage.set("k", "x" * 1_000_001), "larger than 1000000"),
        (lambda m: m.cache.set("k", "x" * 1_000_001, json_serialize=False), "larger than 1000000"),
        (lambda m: m.cache.set("k", 1, ttl_seconds=-1), "ttl_seconds must be a positive number"),
        (lambda m: m.cache.lpush("k", list(range(MAX_LIST_PUSH + 1))), "at most 1000 elements"),
        (lambda m: m.cache.lrange("k", "0", 1), "integer start and end"),
        (lambda m: m.metrics.increment("not a name"), "a metric name"),
        (lambda m: m.metrics.increment("n", True), "a metric value is a number"),
        (lambda m: m.jobs.send({"a": 1}).run_in(days=400), "between now and a year"),
        (lambda m: m.jobs.send({"a": 1}).run_now(), "jobs are not available"),
        (lambda m: m.fetch("file:///etc/passwd"), "only http"),
        (lambda m: m.fetch("http://127.0.0.1/"), "not a public address"),
        (lambda m: m.fetch("http://example.com/", method="TRACE"), "not supported"),
    ],
)
def test_capabilities_check_their_arguments_with_a_clear_error(call, message):
    with pytest.raises(MetaError, match=message):
        call(make_meta())


def test_jobs_name_only_the_plugins_own_jobs():
    meta = make_meta()
    with pytest.raises(AttributeError, match="no job named 'other'"):
        meta.jobs.other  # noqa: B018


def test_metrics_combine_per_name():
    metrics = Metrics(config_id=7)
    metrics.increment("n")
    metrics.increment("n", 2)
    metrics.max("m", 3)
    metrics.max("m", 1)
    metrics.min("l", 3)
    metrics.min("l", 1)
    assert metrics._values == {"n": 3.0, "m": 3.0, "l": 1.0}


def test_the_logger_writes_plugin_entries_of_each_kind():
    written: list = []
    meta = make_meta(written)
    meta.logger.info("saw", 3, {"a": 1})  # noqa: PLE1205 - not a logging.Logger
    meta.logger.error("x" * 10, ["y" * MAX_LOG_CHARS])
    assert written[0] == ("PLUGIN", "INFO", 'saw 3 {"a": 1}')
    assert written[1][:2] == ("PLUGIN", "ERROR") and len(written[1][2]) == 11 + MAX_LOG_CHARS
