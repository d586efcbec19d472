"""`meta.metrics`: numbers a plugin reports, exported as the `plugin_metric` gauge."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import Gauge

from plugin_server.plugins.meta._bridge import MetaError

MAX_NAME_CHARS = 100  # a metric name is a label value: bounded, so a plugin cannot bloat /_metrics

PLUGIN_METRIC = Gauge(
    "plugin_metric",
    "Values plugins report through meta.metrics.",
    ["plugin_config_id", "name"],
)


class Metrics:
    __slots__ = ("_config_id", "_values")

    def __init__(self, *, config_id: int) -> None:
        self._config_id = str(config_id)
        self._values: dict[str, float] = {}

    def _update(self, name: str, value: Any, combine: Callable[[float, float], float]) -> None:
        if not isinstance(name, str) or not name.isidentifier() or len(name) > MAX_NAME_CHARS:
            raise MetaError(f"a metric name is a name of at most {MAX_NAME_CHARS} characters")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MetaError("a metric value is a number")
        current = self._values.get(name)
        new = float(value) if current is None else combine(current, float(value))
        self._values[name] = new
        PLUGIN_METRIC.labels(self._config_id, name).set(new)

    def increment(self, name: str, value: float = 1) -> None:
        self._update(name, value, lambda a, b: a + b)

    def max(self, name: str, value: float) -> None:
        self._update(name, value, max)

    def min(self, name: str, value: float) -> None:
        self._update(name, value, min)
