"""Health types: what each consumer loop and check reports, and what `/_health` and `/_ready` answer.

They live at the bottom so that the actors that fill them in (workers/) and the HTTP server that
reads them (http/) need not import each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, NotRequired, TypedDict


@dataclass
class ConsumerStatus:
    """What health checks and `/_ready` read about one consumer loop."""

    name: str
    assigned: bool = False
    running: bool = False
    last_poll: float = field(default_factory=time.monotonic)
    last_progress: float = field(default_factory=time.monotonic)
    lag: int | None = None
    consumed: int = 0
    retrying: str | None = None


class CheckReport(TypedDict):
    """One entry of `/_health`'s `checks`: a consumer loop's full status, or another part's verdict."""

    healthy: bool
    running: NotRequired[bool]
    assigned: NotRequired[bool]
    lag: NotRequired[int | None]
    consumed: NotRequired[int]
    seconds_since_progress: NotRequired[float]
    retrying: NotRequired[str | None]


class HealthReport(TypedDict):
    """The JSON body of `/_health`."""

    status: Literal["ok", "error"]
    checks: dict[str, CheckReport]


@dataclass
class ServerState:
    """What the HTTP server reports; the supervisor fills it in."""

    max_stale_seconds: float
    consumers: list[ConsumerStatus] = field(default_factory=list)
    ready: bool = False
    stopping: bool = False
    # Other parts' health (e.g. the plugin runtime): name -> "is it healthy now".
    checks: dict[str, Callable[[], bool]] = field(default_factory=dict)

    def health(self, now: float | None = None) -> tuple[bool, HealthReport]:
        now = time.monotonic() if now is None else now
        checks: dict[str, CheckReport] = {}
        for c in self.consumers:
            stale = now - c.last_progress > self.max_stale_seconds and bool(c.lag)
            checks[c.name] = {
                "running": c.running,
                "assigned": c.assigned,
                "lag": c.lag,
                "consumed": c.consumed,
                "seconds_since_progress": round(now - c.last_progress, 3),
                "retrying": c.retrying,
                "healthy": c.running and not stale,
            }
        for name, check in self.checks.items():
            checks[name] = {"healthy": check()}
        healthy = all(check["healthy"] for check in checks.values())
        return healthy, {"status": "ok" if healthy else "error", "checks": checks}

    def is_ready(self) -> bool:
        return self.ready and not self.stopping and all(c.running and c.assigned for c in self.consumers)
