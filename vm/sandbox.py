"""The plugin sandbox: compile plugin sources under our policy, instantiate them, call into them.

API:

- `compile_plugin(sources: Mapping[str, str], *, main="main.py") -> CompiledPlugin` compiles every
  file (flat `name.py` names) with RestrictedPython and `PluginPolicy`, or raises
  `PolicyViolation` listing every refusal of every file with its line. Nothing runs.
- `CompiledPlugin.instantiate(*, timeout, log, limits=Limits()) -> PluginInstance` runs the main
  module (and the helper files it imports) in fresh globals: one instance per plugin config, so
  configs never share state. Module-level code runs under the deadline too.
- `PluginInstance.exports` (dict: the exported functions and `jobs`),
  `PluginInstance.capabilities()` (PostHog's `{"methods", "scheduled_tasks", "jobs"}` shape).
- `PluginInstance.call(fn, *args, timeout, log, limits=Limits())` runs one plugin function
  synchronously in the current thread (callers use `trio.to_thread.run_sync`), under a per-call
  deadline, recursion bound and output cap, and returns a plain-data copy of its result (dict
  with str keys, list, str, int, float, bool, None; tuples become lists). It raises
  `PluginTimeout`, `PluginResourceError` or `PluginRuntimeError`, naming the plugin's file and
  line; tracebacks show only plugin frames. `log(kind, text)` receives `print` output
  (kind "log") and the sandbox's own notes (kind "warn").

Arguments are handed in as they are: pass plain data (a copy of the event) and a `meta` whose
objects the plugin may see entirely; meta callables should raise plain exceptions with str
arguments (an exception carries whatever it references into plugin code).

The sandbox's parts, each in its own module:

- `vm.policy`: the compile-time policy (RestrictedPython's, plus imports, ticks, depth and size
  rewrites); `compile_plugin` here wraps its `compile_sources`.
- `vm.budget`: the per-call budget (deadline ticks, recursion depth, output, memory watchdog),
  built from `Limits`.
- `vm.sizes`: size guards for single operations (`*`, `**`, `+`, `%`, f-strings, str/repr/JSON).
- `vm.guards`: run-time attribute, write and in-place guards; `vm.plugin_builtins`: the builtins
  plugins see; `vm.safe_modules` and `vm.safe_re`: the allow-listed modules.
- `vm.export`: the plain-data copy of what a call returns.

Known residuals (for the VM processes of issue 13; no in-process guard closes them):
- CPython 3.11 hashes nested tuples recursively in C, so a tuple nested ~100k deep used as a dict
  key crashes the process (tests/unit/vm/test_hostile.py pins it as a strict xfail).
- Single C calls are bounded by their operands (`vm.sizes`), not by the deadline: the largest
  operands allowed still hold the GIL for up to a second or two (`Decimal` arithmetic on
  ten-million-digit operands, a sort or split of ten million items).
- Everything in the process is reachable from any function's `__globals__` or any frame's
  `f_back`; only the guards refuse those names.
- Memory kept across calls is not counted (the watchdog measures growth during a call).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from vm.budget import Abort, Budget, pop, push
from vm.errors import (
    PluginResourceError,
    PluginRuntimeError,
    PluginTimeout,
    SandboxError,
)
from vm.export import export_value
from vm.plugin_builtins import plugin_builtins
from vm.policy import compile_sources
from vm.safe_modules import PACKAGES, instance_modules
from vm.sizes import estimate_size

__all__ = [
    "EXPORT_EVENTS_RETRY_JOB",
    "METHODS",
    "SCHEDULED_TASKS",
    "CompiledPlugin",
    "Limits",
    "PluginInstance",
    "compile_plugin",
    "export_value",
    "plugin_builtins",
]

METHODS = (
    "setup_plugin",
    "teardown_plugin",
    "process_event",
    "on_event",
    "export_events",
)
SCHEDULED_TASKS = ("run_every_minute", "run_every_hour", "run_every_day")
EXPORT_EVENTS_RETRY_JOB = "export_events_with_retry"  # PostHog: exportEvents adds onEvent and this job
MAX_MESSAGE_CHARS = 2_000  # of an error message in a log entry


@dataclass(frozen=True)
class Limits:
    """Bounds of one call besides its timeout (the constants in `vm.sizes` bound single operations)."""

    max_depth: int = 200  # plugin function frames
    max_result_bytes: int = 4 << 20  # estimated JSON size of what a call returns
    max_output_bytes: int = 64 << 10  # print output per call; the rest is dropped with a note
    max_memory_growth: int | None = 512 << 20  # resident memory growth during a call; None: off


def compile_plugin(sources: Mapping[str, str], *, main: str = "main.py") -> CompiledPlugin:
    """Compile every file of a plugin under the policy; PolicyViolation lists every refusal."""
    return CompiledPlugin(main=main[:-3], codes=compile_sources(sources, main=main))


class SourceModule:
    """A plugin file imported by another: a read-only view of its globals (no "_" names)."""

    __slots__ = ("_name", "_namespace")

    def __init__(self, name: str, namespace: dict[str, Any]) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_namespace", namespace)

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("_") and name in self._namespace:
            return self._namespace[name]
        raise AttributeError(f"plugin file {self._name!r} has no attribute {name!r}")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"plugin file {self._name!r} is read-only to other files")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"plugin file {self._name!r} is read-only to other files")

    def __repr__(self) -> str:
        return f"<plugin file {self._name!r}>"


@dataclass(frozen=True)
class CompiledPlugin:
    """Compiled code of every file of a plugin; instantiate once per plugin config."""

    main: str
    codes: Mapping[str, types.CodeType]

    def instantiate(
        self,
        *,
        timeout: float,
        log: Callable[[str, str], None],
        limits: Limits = Limits(),
    ) -> PluginInstance:
        """Run the main file in fresh globals (module code under `timeout`); exports checked."""
        instance = PluginInstance(self)
        instance.call(
            instance._load,
            self.main,
            timeout=timeout,
            log=log,
            limits=limits,
            _host=True,
        )
        instance._collect_exports()
        return instance


@dataclass
class PluginInstance:
    """One plugin config's live plugin: its own globals, modules and `random` generator."""

    compiled: CompiledPlugin
    exports: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._modules = instance_modules()
        self._namespaces: dict[str, dict[str, Any]] = {}
        self._globals_ids: set[int] = set()
        self._builtins = plugin_builtins(self._import, owner=self)

    def _load(self, name: str) -> dict[str, Any]:
        namespace: dict[str, Any] = {"__builtins__": self._builtins, "__name__": name}
        self._namespaces[name] = namespace
        self._globals_ids.add(id(namespace))
        exec(self.compiled.codes[name], namespace)  # noqa: S102 - the compiled, restricted plugin code
        return namespace

    def _import(
        self,
        name: str,
        globals: Any = None,
        locals: Any = None,
        fromlist: Any = (),
        level: int = 0,
    ) -> Any:
        """`__import__` of plugin code: safe modules and the plugin's own files, nothing else."""
        if level:
            raise ImportError("relative imports are not available to plugins")
        if not fromlist:
            name = name.partition(".")[0] if name.partition(".")[0] in PACKAGES else name
        if name in self._modules:
            return self._modules[name]
        if name in self.compiled.codes:
            namespace = self._namespaces.get(name)
            if namespace is None:
                namespace = self._load(name)
            return SourceModule(name, namespace)
        raise ImportError(f"import of {name!r} is not allowed in plugins")

    def _collect_exports(self) -> None:
        namespace = self._namespaces[self.compiled.main]
        for name in METHODS + SCHEDULED_TASKS:
            if name in namespace:
                self.exports[name] = self._own_function(namespace[name], name)
        if "jobs" in namespace:
            jobs = namespace["jobs"]
            if not isinstance(jobs, dict) or not all(type(key) is str for key in jobs):
                raise PluginRuntimeError(
                    "`jobs` must be a dict of job name to function",
                    file=f"{self.compiled.main}.py",
                    line=None,
                )
            self.exports["jobs"] = {
                key: self._own_function(value, f"jobs[{key!r}]")
                for key, value in dict.items(jobs)  # not a plugin subclass's items()
            }

    def _own_function(self, value: Any, name: str) -> Callable[..., Any]:
        if not self._is_own(value):
            raise PluginRuntimeError(
                f"{name} must be a function defined in the plugin",
                file=f"{self.compiled.main}.py",
                line=None,
            )
        return value

    def _is_own(self, value: Any) -> TypeGuard[types.FunctionType]:
        return isinstance(value, types.FunctionType) and id(value.__globals__) in self._globals_ids

    def capabilities(self) -> dict[str, list[str]]:
        """PostHog's capability shape: present methods, scheduled tasks and job names."""
        methods = [name for name in METHODS if name in self.exports]
        if "export_events" in self.exports and "on_event" not in methods:
            methods.append("on_event")
        jobs = sorted(self.exports.get("jobs", {}))
        if "export_events" in self.exports:
            jobs.append(EXPORT_EVENTS_RETRY_JOB)
        return {
            "methods": methods,
            "scheduled_tasks": [name for name in SCHEDULED_TASKS if name in self.exports],
            "jobs": jobs,
        }

    def call(
        self,
        fn: Callable[..., Any],
        *args: Any,
        timeout: float,
        log: Callable[[str, str], None],
        limits: Limits = Limits(),
        _host: bool = False,
    ) -> Any:
        """Run `fn(*args)` under a fresh budget; return a plain-data copy of its result."""
        if not _host and not self._is_own(fn):
            raise ValueError("PluginInstance.call runs functions of this plugin instance only")
        budget = Budget(
            timeout=timeout,
            log=log,
            max_depth=limits.max_depth,
            max_output=limits.max_output_bytes,
            rss_growth_limit=limits.max_memory_growth,
            owner=self,
        )
        push(budget)
        try:
            result = fn(*args)
            if budget.expired is not None:
                # The plugin swallowed the abort (`except BaseException`) and returned without
                # another tick: a call past its deadline or memory limit still fails.
                raise Abort(budget.expired)
        except BaseException as exc:
            raise self._translate(exc, timeout) from exc
        finally:
            pop(budget)
        return None if _host else export_value(result, limits.max_result_bytes, self._where(None))

    def _plugin_frames(self, exc: BaseException) -> list[tuple[str, int, str]]:
        frames = []
        tb = exc.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            if id(frame.f_globals) in self._globals_ids:
                frames.append((frame.f_code.co_filename, tb.tb_lineno, frame.f_code.co_name))
            tb = tb.tb_next
        return frames

    def _where(self, exc: BaseException | None) -> tuple[str | None, int | None, str]:
        frames = self._plugin_frames(exc) if exc is not None else []
        if not frames:
            return f"{self.compiled.main}.py", None, ""
        text = "\n".join(f"{file}:{line} in {function}" for file, line, function in frames)
        return frames[-1][0], frames[-1][1], text

    def _translate(self, exc: BaseException, timeout: float) -> SandboxError:
        file, line, trace = self._where(exc)
        # Plugin code can catch an Abort and raise the error it carries (or keep it for a later
        # call): limit errors are rebuilt with this call's location, never passed through.
        error = exc.error if isinstance(exc, Abort) else exc
        if isinstance(error, PluginTimeout):
            return PluginTimeout(timeout, file=file, line=line, traceback=trace)
        if isinstance(error, PluginResourceError):
            return PluginResourceError(error.message, file=file, line=line, traceback=trace)
        if isinstance(exc, Abort):
            return exc.error
        if isinstance(exc, RecursionError):
            return PluginResourceError("recursion too deep", file=file, line=line, traceback=trace)
        if isinstance(exc, MemoryError):
            return PluginResourceError("out of memory", file=file, line=line, traceback=trace)
        if isinstance(exc, SandboxError):
            return exc
        return PluginRuntimeError(
            _message(exc),
            error_type=type(exc).__name__,
            file=file,
            line=line,
            traceback=trace,
        )


def _message(exc: BaseException) -> str:
    """The text of a plugin exception, bounded, computed without running any plugin code.

    The host formats the message after the plugin failed, so nothing the plugin defined may run
    here: `args` is read from the C slot (a plugin class may shadow it with a property), and only
    a builtin base class's `__str__` formats it, and only over plain data (an argument whose class
    inherits a Python `__str__`, such as a `uuid.UUID` subclass, could call plugin properties).
    """
    args = BaseException.args.__get__(exc)  # type: ignore[attr-defined]  # typeshed: args is a getset descriptor on the class
    try:
        estimate_size(args, MAX_MESSAGE_CHARS * 50, "an error message")
    except Abort:
        return "(the error message is too large to show)"
    if all(_is_plain_data(arg) for arg in args):
        base = next(cls for cls in type(exc).__mro__ if cls.__module__ == "builtins")
        text = base.__str__(exc)  # type: ignore[call-arg]  # mypy binds __str__ to the class object; it is the builtin base's unbound slot
    else:
        text = ", ".join(repr(arg) if _is_plain_data(arg) else f"<{type(arg).__name__} object>" for arg in args)
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + "..."


_PLAIN_TYPES = frozenset({str, int, float, bool, type(None), bytes})


def _is_plain_data(value: Any, depth: int = 0) -> bool:
    """Exactly builtin scalars, or exactly lists/tuples/dicts of them: their str() is all C."""
    kind = type(value)
    if kind in _PLAIN_TYPES:
        return True
    if depth >= 10:
        return False
    if kind is list or kind is tuple:
        return all(_is_plain_data(item, depth + 1) for item in value)
    if kind is dict:
        return all(_is_plain_data(key, depth + 1) and _is_plain_data(item, depth + 1) for key, item in value.items())
    return False
