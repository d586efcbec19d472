"""The process's garbage-collector policy (plugin_server/core/gc_policy.py)."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from plugin_server.app.config import Settings
from plugin_server.core import gc_policy
from plugin_server.core.errors import ConfigError


@pytest.fixture
def thresholds():
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_configure_raises_the_thresholds(thresholds):
    gc_policy.configure(50_000)
    assert gc.get_threshold() == (50_000, *gc_policy.OLDER_GENERATIONS)


def test_zero_leaves_python_defaults(thresholds):
    gc.set_threshold(700, 10, 10)
    gc_policy.configure(0)
    assert gc.get_threshold() == (700, 10, 10)


def test_freeze_moves_the_start_up_heap_to_the_permanent_generation():
    # In a child: freezing the test process's heap would keep its garbage forever.
    code = (
        "import gc; from plugin_server.core import gc_policy; "
        "assert gc.get_freeze_count() == 0; gc_policy.freeze(); "
        "assert gc.get_freeze_count() > 1000, gc.get_freeze_count(); "
        "cycle = []; cycle.append(cycle); del cycle; assert gc.collect() >= 1"  # later cycles are still collected
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_setting_defaults_to_the_raised_threshold_and_refuses_negative_values():
    assert Settings.from_env({}).gc_gen0_threshold == 100_000
    assert Settings.from_env({"GC_GEN0_THRESHOLD": "0"}).gc_gen0_threshold == 0
    with pytest.raises(ConfigError, match="GC_GEN0_THRESHOLD"):
        Settings.from_env({"GC_GEN0_THRESHOLD": "-1"})
