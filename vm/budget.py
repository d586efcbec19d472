"""The per-call budget of plugin code: deadline, recursion depth, output and memory growth.

A `Budget` is per call and per thread: plugin calls run in worker threads and each thread has its
own deadline, depth and output allowance (`push`/`pop` around a call, `current()` inside it). The
policy (`vm.policy`) inserts `_tick_()` into every loop body and comprehension and `_enter_()` at
every function entry; together they read the clock every `TICK_INTERVAL` ticks and abort past the
deadline. `_enter_()` also counts plugin frames (`max_depth`, from `vm.sandbox.Limits`), so plugin
recursion stops far below Python's own limit and host code called from plugins always has stack
to run. Infinite C iterators are handed in wrapped in `ticking`, so C code draining an iterator
meets ticks too.

Limits raise `Abort`, a BaseException, so a plugin's `except Exception:` cannot swallow them; a
deadline or memory abort is sticky (every later tick raises again), so a bare `except:` cannot
either. A thread that is not running a sandbox call has a budget that aborts at its first tick.

Memory: what no single size guard (`vm.sizes`) sees, a loop appending copies, is caught by the
watchdog: resident memory may grow by at most `rss_growth_limit` (`Limits.max_memory_growth`)
during a call, sampled every few milliseconds. A limit is not a hard cap between two samples (a
tight loop of 10 MB copies can overshoot by a few hundred MB), and the watchdog is process-wide; a
hard cap needs a child process per call (~50 µs/event of IPC), which the issue leaves to the
benchmark to justify.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from vm.errors import PluginResourceError, PluginTimeout, SandboxError

TICK_INTERVAL = 128  # ticks between deadline checks: time.monotonic costs ~50 ns, a tick ~40 ns
RSS_CHECK_SECONDS = 0.005  # at most this often the memory watchdog reads /proc/self/statm
ALLOC_CHECK_CHARS = 32 << 20  # guarded allocations since the last memory check that force one


class Abort(BaseException):
    """Unwinds plugin frames on a limit; the call boundary raises the `SandboxError` it carries.

    A BaseException so that `except Exception:` in plugin code does not catch it.
    """

    def __init__(self, error: SandboxError) -> None:
        super().__init__(str(error))
        self._sandbox_error = error

    @property
    def error(self) -> SandboxError:
        return self._sandbox_error


def refuse(message: str) -> Abort:
    """The abort for an operation that would exceed a size bound (raise the result)."""
    return Abort(PluginResourceError(message))


class Budget:
    """The allowance of one call into plugin code, held in a thread-local while it runs."""

    __slots__ = (
        "alloc",
        "deadline",
        "depth",
        "expired",
        "log",
        "max_depth",
        "next_memory_check",
        "outer",
        "output_left",
        "owner",
        "rss_base",
        "rss_growth_limit",
        "ticks",
        "timeout",
    )

    def __init__(
        self,
        *,
        timeout: float,
        log: Callable[[str, str], None],
        max_depth: int,
        max_output: int,
        rss_growth_limit: int | None,
        owner: object = None,
    ) -> None:
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.ticks = TICK_INTERVAL
        self.depth = 0
        self.max_depth = max_depth
        self.log = log
        self.output_left = max_output
        self.expired: SandboxError | None = None
        self.alloc = 0
        self.rss_growth_limit = rss_growth_limit
        self.rss_base = _recent_rss() if rss_growth_limit is not None else 0
        self.next_memory_check = 0.0
        self.outer: Budget | None = None
        self.owner = owner  # the plugin instance whose call this is

    def refill(self, owner: object = None) -> None:
        """Every TICK_INTERVAL ticks: the deadline, and now and then the memory watchdog.

        `owner` is the instance whose code ticks: another instance's code running in this call
        (a generator finalized by the GC here) is stopped without charging this call for it.
        """
        if owner is not None and owner is not self.owner:
            self.ticks = 0
            raise Abort(SandboxError("plugin code ran outside its own call"))
        if self.expired is not None:
            raise Abort(self.expired)
        now = time.monotonic()
        if now >= self.deadline:
            self.expire(PluginTimeout(self.timeout))
        if self.rss_growth_limit is not None and now >= self.next_memory_check:
            self.check_memory(now)
        self.ticks = TICK_INTERVAL

    def expire(self, error: SandboxError) -> None:
        """Make every later tick of this call raise `error` (a bare `except:` cannot outlive it)."""
        self.expired = error
        self.ticks = 0
        raise Abort(error)

    def charge(self, size: int) -> None:
        """Count a guarded allocation; many of them in a row trigger a memory check at once."""
        self.alloc += size
        if self.alloc >= ALLOC_CHECK_CHARS and self.rss_growth_limit is not None:
            self.check_memory(time.monotonic())

    def check_memory(self, now: float) -> None:
        """The watchdog: this process's resident memory may grow by at most the call's limit.

        Process-wide, so another thread's growth counts too; a call that is not the culprit may
        be stopped when the process is near its limit, which is still better than the OOM killer.
        """
        self.alloc = 0
        self.next_memory_check = now + RSS_CHECK_SECONDS
        grown = _rss() - self.rss_base
        if self.rss_growth_limit is not None and grown > self.rss_growth_limit:
            self.expire(PluginResourceError(f"plugin call grew the process memory by {grown >> 20} MiB"))


class _Outside(Budget):
    """The budget of a thread that is not running a sandbox call: plugin code may not run there."""

    def refill(self, owner: object = None) -> None:
        self.ticks = 0
        raise Abort(SandboxError("plugin code ran outside a sandbox call"))

    def charge(self, size: int) -> None:
        # A guarded allocation outside a call: a plugin generator's `finally` run by the GC.
        raise Abort(SandboxError("plugin code ran outside a sandbox call"))


class _Local(threading.local):
    budget: Budget = _Outside(
        timeout=0.0,
        log=lambda kind, text: None,
        max_depth=0,
        max_output=0,
        rss_growth_limit=None,
    )


_local = _Local()
_local.budget.ticks = 0


def current() -> Budget:
    return _local.budget


def push(budget: Budget) -> None:
    """Make `budget` this thread's; a nested call (plugin → host → plugin) keeps the outer one."""
    budget.outer = _local.budget
    _local.budget = budget


def pop(budget: Budget) -> None:
    _local.budget = budget.outer if budget.outer is not None else _Local.budget


def tick() -> bool:
    """Inserted into every loop body and comprehension: a counter, the clock every N times."""
    budget = _local.budget
    budget.ticks -= 1
    if budget.ticks < 0:
        budget.refill()
    return True


def enter() -> Budget:
    """Inserted at every plugin function entry: a tick plus the recursion depth check.

    The function's `finally` decrements `depth` on the returned budget.
    """
    budget = _local.budget
    budget.ticks -= 1
    if budget.ticks < 0:
        budget.refill()
    if budget.depth >= budget.max_depth:
        raise refuse(f"recursion deeper than {budget.max_depth} plugin function calls")
    budget.depth += 1
    return budget


_statm_fd: int | None = None
_last_rss = (
    0.0,
    0,
)  # (monotonic time, bytes): call starts reuse a reading younger than RSS_CHECK_SECONDS


def _recent_rss() -> int:
    """The resident size at most RSS_CHECK_SECONDS old: reading /proc costs ~3 µs, a call ~1 µs."""
    global _last_rss
    now = time.monotonic()
    if now - _last_rss[0] > RSS_CHECK_SECONDS:
        _last_rss = (now, _rss())
    return _last_rss[1]


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss() -> int:
    """Resident bytes of this process (Linux /proc); 0 where unknown, which disables the watchdog."""
    global _statm_fd
    try:
        if _statm_fd is None:
            _statm_fd = os.open("/proc/self/statm", os.O_RDONLY)
        return int(os.pread(_statm_fd, 128, 0).split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def ticking(iterable: Iterable[Any]) -> Iterator[Any]:
    """Yield from `iterable` with a tick per item, so C code draining it still meets the deadline."""
    for item in iterable:
        tick()
        yield item


def owned_ticks(
    owner: object,
) -> tuple[Callable[[], bool], Callable[[], Budget], Callable[[], bool]]:
    """`tick`, `enter` and `abandoned` for the code of one plugin instance (`owner`).

    A suspended plugin generator is finalized whenever the GC drops it: on a host thread outside
    any call, or inside another plugin's call. Its `finally` blocks then run, and these ticks stop
    them within TICK_INTERVAL ticks instead of letting them spend that call's time and log;
    `abandoned()` tells the policy's generator wrapper to end such a generator quietly.
    """
    local = _local

    def owned_tick() -> bool:
        budget = local.budget
        budget.ticks -= 1
        if budget.ticks < 0:
            budget.refill(owner)
        return True

    def owned_enter() -> Budget:
        budget = local.budget
        budget.ticks -= 1
        if budget.ticks < 0:
            budget.refill(owner)
        if budget.depth >= budget.max_depth:
            raise refuse(f"recursion deeper than {budget.max_depth} plugin function calls")
        budget.depth += 1
        return budget

    def abandoned() -> bool:
        """Whether an abort may end a generator quietly: its call is over, or not its own.

        Expired counts too: a deadline abort is sticky, so the consumer still stops at its next
        tick, while the generator it abandoned is closed without an "Exception ignored".
        """
        budget = local.budget
        return budget.owner is not owner or budget.expired is not None

    return owned_tick, owned_enter, abandoned
