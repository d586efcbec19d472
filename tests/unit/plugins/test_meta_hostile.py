"""The hostile corpus's attacks through meta (`tests/hostile/attack_meta_*.py`, the outage ones
aside: tests/unit/plugins/test_outage.py runs those) against a real meta on the in-memory stores.

tests/unit/vm/test_hostile.py runs the same files with no meta (they fail on `None.storage`); here
each file's second line says what meta does with it: `# with meta: MetaError` (the call fails
with the plugin's MetaError, nothing was written) or `# with meta: returns` (contained: the call
returns, and what the host wrote is bounded). Before these were refused, each one held the GIL in
a single host C call (json.dumps or str() expanding a self-similar structure, a 10 GB join)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from plugin_server.plugins.logs import MAX_MESSAGE_CHARS, LogTarget
from tests.plugins_world import OneConfig
from vm.errors import PluginRuntimeError

CORPUS = Path(__file__).parents[2] / "hostile"
ATTACKS = [p for p in sorted(CORPUS.glob("attack_meta_*.py")) if not p.name.startswith("attack_meta_outage_")]
TIMEOUT = 5.0
EVENT = {"uuid": "u-1", "team_id": 2, "event": "pageview", "distinct_id": "d", "properties": {}, "ip": None}
TARGET = LogTarget(2, 3, 7, "instance")


def _with_meta(path: Path) -> str:
    second = path.read_text().splitlines()[1]
    assert second.startswith("# with meta: "), f"{path.name}: second line must be '# with meta: ...'"
    return second.removeprefix("# with meta: ").strip()


def test_the_meta_corpus_is_there():
    assert len(ATTACKS) >= 8


@pytest.mark.parametrize("path", ATTACKS, ids=[p.stem.removeprefix("attack_meta_") for p in ATTACKS])
async def test_an_attack_through_meta_is_refused_or_contained(path: Path):
    world = OneConfig()
    config = world.load(path.read_text())
    outcome = _with_meta(path)
    with trio.fail_after(20):
        call = trio.to_thread.run_sync(config.call, config.instance.exports["process_event"], EVENT)
        if outcome == "MetaError":
            with pytest.raises(PluginRuntimeError) as refused:
                await call
            assert refused.value.error_type == "MetaError", str(refused.value)
            assert await world.store.storage_get(7, "k") is None
            assert await world.redis.get("@plugin-config/7/k") is None
            assert await world.redis.command("llen", "@plugin-config/7/k") == 0
            assert world.jobs.jobs == []
        else:
            assert outcome == "returns", f"{path.name}: unknown outcome {outcome!r}"
            assert await call == EVENT
    for row in world.logs.drain():
        assert len(json.loads(row.line)["message"]) <= MAX_MESSAGE_CHARS + 100
