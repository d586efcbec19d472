"""One behaviour suite for the plugin store: the Postgres adapter and the in-memory fake.

What the plugin runtime and `meta` rely on: which configs are active and in which order, a
revision that changes exactly when the loaded code or config is outdated, error and disabling
bookkeeping, and plugin storage (text values per config, atomic counters).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import trio

from plugin_server.core.errors import StorageError
from plugin_server.storage.plugins import Attachment, ConfigRow, PluginStore
from plugin_server.storage.postgres import open_postgres
from plugin_server.storage.teams import TeamStore
from plugin_server.testing.plugins import InMemoryPluginStore

MISSING = 2_000_000_000  # no plugin or config has this id


@dataclass
class Subject:
    store: PluginStore | InMemoryPluginStore  # the runtime's Protocol, plus install/update_sources/error_of
    team: int
    other_team: int

    async def install(self, *, team: int | None = None, order: int = 0, name: str = "p", **overrides: Any):
        options = {
            "team_id": self.team if team is None else team, "name": name, "description": "d", "url": "https://x",
            "config_schema": [{"key": "a"}], "capabilities": {"methods": ["process_event"]},
            "sources": {"main.py": "def process_event(event, meta):\n    return event\n", "plugin.json": "{}"},
            "config": {"a": "1"}, "order": order,
        } | overrides  # fmt: skip
        return await self.store.install(**options)

    async def active(self) -> list[ConfigRow]:
        """This test's active configs (the database holds other tests' too)."""
        return [r for r in await self.store.active_configs() if r.team_id in (self.team, self.other_team)]

    async def row(self, config_id: int) -> ConfigRow | None:
        return next((r for r in await self.active() if r.config_id == config_id), None)


@asynccontextmanager
async def real_store(services) -> AsyncIterator[Subject]:
    async with open_postgres(services.database_url, max_size=4) as pg:
        teams = TeamStore(pg=pg)
        subject = Subject(
            PluginStore(pg=pg), (await teams.create("plugins-a")).id, (await teams.create("plugins-b")).id
        )
        try:
            yield subject
        finally:  # other suites' runtimes load every active config: leave none behind
            await pg.execute(
                "UPDATE posthog_pluginconfig SET enabled = false WHERE team_id = ANY($1::int[])",
                [subject.team, subject.other_team],
            )


@asynccontextmanager
async def fake_store(services) -> AsyncIterator[Subject]:
    yield Subject(InMemoryPluginStore(), 1, 2)


@pytest.fixture(params=[real_store, fake_store], ids=["postgres", "in-memory"])
async def subject(request, aio, services):
    async with request.param(services) as opened:
        with trio.fail_after(30):
            yield opened


# -- configs ---------------------------------------------------------------------------------------


async def test_an_installed_config_is_active_with_everything_needed_to_load_it(subject):
    s = subject
    cert = Attachment("cert", "text/plain", "cert.pem", b"\x00SECRET\xff")
    plugin_id, config_id = await s.install(order=3, config={"a": "1", "n": [1]}, attachments=[cert])
    row = await s.row(config_id)
    assert (row.config_id, row.team_id, row.order, row.plugin_id, row.plugin_name) == (
        config_id,
        s.team,
        3,
        plugin_id,
        "p",
    )
    assert row.config == {"a": "1", "n": [1]} and row.config_schema == [{"key": "a"}]
    assert row.sources == {"main.py": "def process_event(event, meta):\n    return event\n", "plugin.json": "{}"}
    assert row.attachments == {"cert": cert} and row.log_level is None
    assert row.revision is not None and row.revision == (await s.row(config_id)).revision


async def test_active_configs_come_by_team_then_order_then_id(subject):
    s = subject
    installed = [
        await s.install(team=s.other_team, order=0),
        await s.install(order=2),
        await s.install(order=1),
        await s.install(order=1),
    ]
    assert [(r.team_id, r.order, r.config_id) for r in await s.active()] == sorted(
        (team, order, config_id) for team, order, (_, config_id) in zip(
            [s.other_team, s.team, s.team, s.team], [0, 2, 1, 1], installed, strict=True
        )
    )  # fmt: skip


async def test_a_plugin_without_a_name_is_named_by_its_id(subject):
    s = subject
    plugin_id, config_id = await s.install(name="")
    assert (await s.row(config_id)).plugin_name == f"plugin-{plugin_id}"


async def test_attachments_belong_to_their_config_only(subject):
    s = subject
    _, with_cert = await s.install(attachments=[Attachment("cert", "text/plain", "cert.pem", b"SECRET")])
    _, without = await s.install()
    assert list((await s.row(with_cert)).attachments) == ["cert"] and (await s.row(without)).attachments == {}


async def test_rows_are_copies(subject):
    s = subject
    _, config_id = await s.install()
    row = await s.row(config_id)
    row.config["a"] = "changed"
    row.sources["main.py"] = "changed"
    assert (await s.row(config_id)).config == {"a": "1"} and "changed" not in (await s.row(config_id)).sources.values()


async def test_an_install_with_bad_text_is_refused_whole(subject):
    s = subject
    before = await s.active()
    for overrides in (
        {"sources": {"main.py": "x\x00"}},
        {"sources": {"f" * 201: ""}},
        {"name": "n" * 201},
        {"attachments": [Attachment("k" * 201, "t", "f", b"")]},
        {"config": {"o": object()}},
    ):
        with pytest.raises(StorageError):
            await s.install(**overrides)
    assert await s.active() == before


# -- revisions and bookkeeping -----------------------------------------------------------------------


async def test_updated_sources_make_a_new_plugin_revision(subject):
    s = subject
    plugin_id, config_id = await s.install()
    before = await s.row(config_id)
    await s.store.update_sources(plugin_id, {"main.py": "v2", "util.py": "u"})
    after = await s.row(config_id)
    assert after.sources == {"main.py": "v2", "util.py": "u", "plugin.json": "{}"}
    assert after.revision[0] == before.revision[0] and after.revision[1] > before.revision[1]
    await s.store.update_sources(plugin_id, {})
    assert (await s.row(config_id)).revision[1] > after.revision[1]  # touched even without files


async def test_sources_of_an_unknown_plugin_are_refused(subject):
    s = subject
    with pytest.raises(StorageError):
        await s.store.update_sources(MISSING, {"main.py": "x"})
    await s.store.update_sources(MISSING, {})  # nothing to insert: no error


async def test_a_plugin_exists_once_installed(subject):
    s = subject
    plugin_id, _ = await s.install()
    assert await s.store.plugin_exists(plugin_id)
    assert not await s.store.plugin_exists(MISSING)


async def test_capabilities_do_not_make_a_new_revision(subject):
    s = subject
    plugin_id, config_id = await s.install()
    before = await s.row(config_id)
    await s.store.set_capabilities(plugin_id, {"methods": ["process_event", "on_event"]})
    await s.store.set_capabilities(MISSING, {})
    assert (await s.row(config_id)).revision == before.revision


async def test_a_disabled_config_is_no_longer_active(subject):
    s = subject
    _, config_id = await s.install()
    _, other = await s.install()
    assert await s.store.disable(config_id) is True
    assert await s.store.disable(config_id) is False  # only the call that disabled it says so
    assert await s.store.disable(MISSING) is False
    assert [r.config_id for r in await s.active()] == [other]


async def test_errors_are_recorded_cleared_and_read(subject):
    s = subject
    _, config_id = await s.install()
    assert await s.store.error_of(config_id) is None
    error = {"message": "no tens: 10", "time": "2024-05-01T12:00:00Z", "event": {"uuid": "u", "n": (1,)}}
    await s.store.set_error(config_id, error)
    assert await s.store.error_of(config_id) == {
        "message": "no tens: 10",
        "time": "2024-05-01T12:00:00Z",
        "event": {"uuid": "u", "n": [1]},
    }
    await s.store.set_error(config_id, None)
    assert await s.store.error_of(config_id) is None
    await s.store.set_error(config_id, None)  # clearing a clear error is no error
    await s.store.set_error(MISSING, {"message": "x"})
    assert await s.store.error_of(MISSING) is None
    with pytest.raises(StorageError):
        await s.store.set_error(config_id, {"o": object()})


# -- storage ---------------------------------------------------------------------------------------


async def test_storage_keeps_text_per_config(subject):
    s = subject
    _, a = await s.install()
    _, b = await s.install()
    assert await s.store.storage_get(a, "k") is None
    await s.store.storage_set(a, "k", '{"v": 1}')
    await s.store.storage_set(b, "k", "b's")
    await s.store.storage_set(a, "k", '"second"')
    assert (await s.store.storage_get(a, "k"), await s.store.storage_get(b, "k")) == ('"second"', "b's")
    await s.store.storage_del(a, "k")
    await s.store.storage_del(a, "k")
    assert (await s.store.storage_get(a, "k"), await s.store.storage_get(b, "k")) == (None, "b's")


async def test_storage_keys_are_varchar_200_and_text_holds_no_nul(subject):
    s = subject
    _, config_id = await s.install()
    await s.store.storage_set(config_id, "k" * 200, "ü" * 1000)
    assert await s.store.storage_get(config_id, "k" * 200) == "ü" * 1000
    assert await s.store.storage_get(config_id, "k" * 201) is None
    for key, value in (("k" * 201, "v"), ("k\x00", "v"), ("k", "v\x00")):
        with pytest.raises(StorageError):
            await s.store.storage_set(config_id, key, value)
    assert await s.store.storage_get(config_id, "k") is None


async def test_storage_of_an_unknown_config_is_refused_on_write(subject):
    s = subject
    for write in (
        s.store.storage_set(MISSING, "k", "v"),
        s.store.storage_init(MISSING, "k", 0),
        s.store.storage_increment(MISSING, "k", 1),
    ):
        with pytest.raises(StorageError):
            await write
    assert await s.store.storage_get(MISSING, "k") is None
    await s.store.storage_del(MISSING, "k")


async def test_counters_start_at_their_first_step_or_their_initial_value(subject):
    s = subject
    _, config_id = await s.install()
    assert await s.store.storage_increment(config_id, "c", 5) == 5
    assert await s.store.storage_increment(config_id, "c", -7) == -2
    await s.store.storage_init(config_id, "c", 100)  # exists: left alone
    await s.store.storage_init(config_id, "d", 100)
    assert await s.store.storage_increment(config_id, "d", 1) == 101
    assert (await s.store.storage_get(config_id, "c"), await s.store.storage_get(config_id, "d")) == ("-2", "101")


@pytest.mark.parametrize(("stored", "expected"), [("5", 6), (" 5 ", 6), ("+5", 6), ("-5", -4), ("007", 8)])
async def test_counters_read_what_storage_holds_as_a_bigint(subject, stored, expected):
    s = subject
    _, config_id = await s.install()
    await s.store.storage_set(config_id, "c", stored)
    assert await s.store.storage_increment(config_id, "c", 1) == expected


@pytest.mark.parametrize("stored", ['"5"', "5.0", "", "five", "9223372036854775807", "99999999999999999999"])
async def test_a_counter_over_anything_else_is_refused_and_left_alone(subject, stored):
    s = subject
    _, config_id = await s.install()
    await s.store.storage_set(config_id, "c", stored)
    with pytest.raises(StorageError):
        await s.store.storage_increment(config_id, "c", 1)
    assert await s.store.storage_get(config_id, "c") == stored
    with pytest.raises(StorageError):
        await s.store.storage_increment(config_id, "new", 2**63)
    assert await s.store.storage_get(config_id, "new") is None
