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

How the policy works (on top of RestrictedPython's, which guards attribute, item, iteration and
write access and refuses names starting with "_"):

- Time: `_tick_()` is inserted into every loop body and comprehension and `_enter_()` at every
  function entry; together they read the clock every `TICK_INTERVAL` ticks and abort past the
  deadline. Infinite C iterators (`itertools.count`, `cycle`, `repeat`, ...) are handed in as
  generators that tick, and `range` is bounded, so C code draining an iterator meets ticks too.
- Recursion: `_enter_()` counts plugin frames (`Limits.max_depth`), so plugin recursion stops far
  below Python's own limit and host code called from plugins always has stack to run.
- Memory: `*`, `**`, `<<`, `+`, `%` and f-strings are rewritten into guarded helpers that check
  result sizes before computing (`'x' * 10**10`, `10**10**10`, `s = s + s` in a loop); the
  materializing builtins (`list`, `tuple`, `dict`, `set`, `sorted`, `bytes`, `bytearray`, `str`,
  `repr`, `format`, `range`, ...) and the padding/joining/replacing methods of str/bytes/list
  (`ljust`, `center`, `zfill`, `expandtabs`, `replace`, `join`, `translate`, `to_bytes`, `extend`,
  `split`, ...) are guarded the same way, and `str()`/`repr()`/JSON of a structure is estimated
  first so shared references cannot expand exponentially. What no single guard sees (a loop
  appending copies) is caught by the memory watchdog: resident memory may grow by at most
  `Limits.max_memory_growth` during a call, sampled every few milliseconds. A limit is not a
  hard cap between two samples (a tight loop of 10 MB copies can overshoot by a few hundred MB),
  and the watchdog is process-wide; a hard cap needs a child process per call (~50 µs/event of
  IPC), which the issue leaves to the benchmark to justify. Known residual: CPython 3.11 hashes
  nested tuples recursively in C, so a tuple nested ~100k deep used as a dict key crashes the
  process (tests/hostile/attack_deep_tuple_hash.py pins it as a strict xfail).
"""

from __future__ import annotations

import ast
import builtins
import operator
import re
import string
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from RestrictedPython import compile_restricted_exec
from RestrictedPython.Guards import (
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
)
from RestrictedPython.transformer import (
    INSPECT_ATTRIBUTES,
    RestrictingNodeTransformer,
    copy_locations,
)

from vm import safe_modules as sm
from vm.errors import (
    PluginResourceError,
    PluginRuntimeError,
    PluginTimeout,
    PolicyViolation,
    SandboxError,
    Violation,
)

METHODS = (
    "setup_plugin",
    "teardown_plugin",
    "process_event",
    "on_event",
    "export_events",
)
SCHEDULED_TASKS = ("run_every_minute", "run_every_hour", "run_every_day")
EXPORT_EVENTS_RETRY_JOB = (
    "export_events_with_retry"  # PostHog: exportEvents adds onEvent and this job
)
MAX_SOURCE_CHARS = 1_000_000  # all files of one plugin
MAX_MESSAGE_CHARS = 2_000  # of an error message in a log entry
MAX_RESULT_DEPTH = 100  # nesting of a returned value


@dataclass(frozen=True)
class Limits:
    """Bounds of one call besides its timeout (module constants in safe_modules bound single ops)."""

    max_depth: int = 200  # plugin function frames
    max_result_bytes: int = 4 << 20  # estimated JSON size of what a call returns
    max_output_bytes: int = (
        64 << 10
    )  # print output per call; the rest is dropped with a note
    max_memory_growth: int | None = (
        512 << 20
    )  # resident memory growth during a call; None: off


# ---- compile-time policy ---------------------------------------------------------------------

_GUARDED_BINOPS: dict[type[ast.operator], str] = {
    ast.Mult: "_mul_",
    ast.Pow: "_pow_",
    ast.LShift: "_lshift_",
    ast.Add: "_add_",
    ast.Mod: "_mod_",
}
_LINE = re.compile(r"^Line (\d+|None): (.*)$", re.DOTALL)


def _call(name: str, *args: ast.expr) -> ast.Call:
    return ast.Call(func=ast.Name(name, ast.Load()), args=list(args), keywords=[])


def _is_generator(node: ast.FunctionDef) -> bool:
    """Whether `node` itself (not a nested function) yields."""
    stack: list[ast.AST] = list(node.body)
    while stack:
        child = stack.pop()
        if isinstance(child, (ast.Yield, ast.YieldFrom)):
            return True
        if not isinstance(
            child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
        ):
            stack.extend(ast.iter_child_nodes(child))
    return False


class PluginPolicy(RestrictingNodeTransformer):
    """RestrictedPython's policy plus imports, ticks, recursion depth and size guards.

    `source_modules` (set per compile) are the plugin's own files, importable by name.
    """

    source_modules: frozenset[str] = frozenset()

    def _check_module(self, node: ast.AST, module: str | None) -> bool:
        if (
            module in sm.SAFE_MODULE_NAMES
            or module in sm.PACKAGES
            or module in self.source_modules
        ):
            return True
        self.error(
            node,
            f"import of {module!r} is not allowed (plugins may import: {', '.join(sorted(sm.SAFE_MODULE_NAMES))}, and their own files)",
        )
        return False

    def visit_Import(self, node: ast.Import) -> Any:
        for alias in node.names:
            self._check_module(node, alias.name)
        return super().visit_Import(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> Any:
        if node.level:
            self.error(
                node, "relative imports are not allowed; import plugin files by name"
            )
        elif self._check_module(
            node, node.module
        ) and node.module in sm.SAFE_MODULE_NAMES | set(sm.PACKAGES):
            members = sm.PACKAGES.get(node.module) or sm.module_members(node.module)
            for alias in node.names:
                if alias.name != "*" and alias.name not in members:
                    self.error(
                        node, f"{node.module}.{alias.name} is not available to plugins"
                    )
        return super().visit_ImportFrom(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> Any:
        """RestrictedPython rebuilds the class statement from a template on line 1: fix its lines."""
        rebuilt = super().visit_ClassDef(node)
        copy_locations(rebuilt, node)
        for keyword in rebuilt.keywords:
            copy_locations(keyword, node)
            copy_locations(keyword.value, node)
        return rebuilt

    def visit_Global(self, node: ast.Global) -> Any:
        for name in node.names:
            self.check_name(node, name)
        return super().visit_Global(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> Any:
        node = super().visit_FunctionDef(node)
        if _is_generator(node):
            # A suspended generator is not on the stack: tick only, no depth bookkeeping.
            prologue: list[ast.stmt] = [ast.Expr(_call("_tick_"))]
            node.body = prologue + node.body
        else:
            leave = ast.AugAssign(
                target=ast.Attribute(
                    ast.Name("_sb_", ast.Load()), "depth", ast.Store()
                ),
                op=ast.Sub(),
                value=ast.Constant(1),
            )
            guarded = ast.Try(body=node.body, handlers=[], orelse=[], finalbody=[leave])
            node.body = [
                ast.Assign(
                    targets=[ast.Name("_sb_", ast.Store())], value=_call("_enter_")
                ),
                guarded,
            ]
        for statement in node.body:
            copy_locations(statement, node)
        return node

    def visit_Lambda(self, node: ast.Lambda) -> Any:
        node = super().visit_Lambda(node)
        node.body = ast.BoolOp(op=ast.And(), values=[_call("_tick_"), node.body])
        copy_locations(node.body, node)
        return node

    def _tick_first(self, node: ast.For | ast.While) -> ast.For | ast.While:
        tick = ast.Expr(_call("_tick_"))
        copy_locations(tick, node)
        node.body.insert(0, tick)
        return node

    def visit_For(self, node: ast.For) -> Any:
        return self._tick_first(super().visit_For(node))

    def visit_While(self, node: ast.While) -> Any:
        return self._tick_first(super().visit_While(node))

    def visit_comprehension(self, node: ast.comprehension) -> Any:
        node = super().visit_comprehension(node)
        tick = _call("_tick_")
        copy_locations(tick, node.iter)
        node.ifs.insert(0, tick)
        return node

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        node = super().visit_BinOp(node)
        helper = _GUARDED_BINOPS.get(type(node.op))
        both_constant = isinstance(node.left, ast.Constant) and isinstance(
            node.right, ast.Constant
        )
        if helper is None or (
            both_constant and helper != "_pow_" and helper != "_mul_"
        ):
            return node
        if helper == "_add_" and (
            isinstance(node.left, ast.Constant) or isinstance(node.right, ast.Constant)
        ):
            return node  # `x + 1`, `s + "!"`: grows by a constant, cannot double
        guarded = _call(helper, node.left, node.right)
        copy_locations(guarded, node)
        return guarded

    def visit_JoinedStr(self, node: ast.JoinedStr) -> Any:
        """f-strings become `_fjoin_(...)` of `_fmt_(value, conversion, spec)`: bounded widths and text."""
        node = super().visit_JoinedStr(node)
        parts: list[ast.expr] = []
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                spec = (
                    value.format_spec
                    if value.format_spec is not None
                    else ast.Constant("")
                )
                parts.append(
                    _call("_fmt_", value.value, ast.Constant(value.conversion), spec)
                )
            else:
                parts.append(value)
        joined = _call("_fjoin_", *parts)
        copy_locations(joined, node)
        return joined

    def visit_FormattedValue(self, node: ast.FormattedValue) -> Any:
        return self.node_contents_visit(node)

    def visit_Assign(self, node: ast.Assign) -> Any:
        """`x[a:b] = v` becomes a guarded call (a slice store can double a list)."""
        target = node.targets[0]
        if (
            len(node.targets) == 1
            and isinstance(target, ast.Subscript)
            and isinstance(target.slice, ast.Slice)
        ):
            piece = target.slice
            bounds = [
                self.visit(part) if part is not None else ast.Constant(None)
                for part in (piece.lower, piece.upper, piece.step)
            ]
            call = _call(
                "_setslice_",
                self.visit(target.value),
                _call("_slice_", *bounds),
                self.visit(node.value),
            )
            statement = ast.Expr(call)
            copy_locations(statement, node)
            return statement
        return super().visit_Assign(node)

    def visit_Subscript(self, node: ast.Subscript) -> Any:
        if (
            not isinstance(node.ctx, ast.Load)
            and isinstance(node.slice, ast.Slice)
            and isinstance(node.ctx, ast.Store)
        ):
            self.error(
                node,
                "slice assignment is only allowed as a single `x[a:b] = value` statement",
            )
        return super().visit_Subscript(node)


def _violations(file: str, messages: tuple[str, ...] | list[str]) -> list[Violation]:
    found = []
    for message in messages:
        matched = _LINE.match(message)
        if matched is None:
            found.append(Violation(file, None, message))
        else:
            line = None if matched[1] == "None" else int(matched[1])
            found.append(Violation(file, line, matched[2]))
    return found


_FILE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*\.py$")


def _check_names(sources: Mapping[str, str], main: str) -> list[Violation]:
    problems = []
    if main not in sources:
        problems.append(Violation(main, None, "the main file is missing"))
    for name in sources:
        stem = name[:-3]
        if not _FILE_NAME.match(name):
            problems.append(
                Violation(
                    name,
                    None,
                    "plugin files must be named like `helpers.py` (no folders)",
                )
            )
        elif stem in sm.SAFE_MODULE_NAMES or stem in sm.PACKAGES:
            problems.append(
                Violation(
                    name, None, f"a plugin file may not shadow the module {stem!r}"
                )
            )
    if sum(len(text) for text in sources.values()) > MAX_SOURCE_CHARS:
        problems.append(
            Violation(
                main, None, f"the plugin's sources exceed {MAX_SOURCE_CHARS} characters"
            )
        )
    return problems


def compile_plugin(
    sources: Mapping[str, str], *, main: str = "main.py"
) -> CompiledPlugin:
    """Compile every file of a plugin under the policy; PolicyViolation lists every refusal."""
    problems = _check_names(sources, main)
    if problems:
        raise PolicyViolation(problems)
    policy = type(
        "Policy",
        (PluginPolicy,),
        {"source_modules": frozenset(name[:-3] for name in sources)},
    )
    codes: dict[str, types.CodeType] = {}
    for name, text in sources.items():
        try:
            result = compile_restricted_exec(text, filename=name, policy=policy)
        except (RecursionError, MemoryError, ValueError) as exc:
            problems.append(
                Violation(name, None, f"cannot compile: {type(exc).__name__}: {exc}")
            )
            continue
        if result.errors:
            problems.extend(_violations(name, result.errors))
        else:
            codes[name[:-3]] = result.code
    if problems:
        raise PolicyViolation(problems)
    return CompiledPlugin(main=main[:-3], codes=codes)


# ---- run-time guards -------------------------------------------------------------------------


_MISSING = object()


class PluginClassMeta(type):
    """Metaclass of every class a plugin defines: marks instances as the plugin's to write."""


class GuardedType:
    """A builtin type handed in through a guarded constructor.

    `isinstance(x, list)`, `class D(dict)`, `dict.fromkeys` and `str.lower` keep working: the
    checks, the base class (`__mro_entries__`) and the attributes are those of the real type.
    """

    __slots__ = ("_construct", "_real")

    def __init__(self, real: type, construct: Callable[..., Any]) -> None:
        object.__setattr__(self, "_real", real)
        object.__setattr__(self, "_construct", construct)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._construct(*args, **kwargs)

    def __instancecheck__(self, instance: object) -> bool:
        return isinstance(instance, self._real)

    def __subclasscheck__(self, subclass: type) -> bool:
        return issubclass(subclass, self._real)

    def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[type]:
        return (self._real,)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def __getitem__(self, item: Any) -> Any:
        return self._real[item]  # type: ignore[index]

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{self._real.__name__} is read-only")

    def __repr__(self) -> str:
        return repr(self._real)


def _real_type(value: Any) -> Any:
    return value._real if type(value) is GuardedType else value


def _materialize(kind: type, what: str) -> Callable[..., Any]:
    def construct(iterable: Any = _MISSING, /) -> Any:
        return kind() if iterable is _MISSING else kind(sm.bounded_list(iterable, what))

    return construct


def _dict(*args: Any, **kwargs: Any) -> dict[Any, Any]:
    if args and not isinstance(args[0], Mapping):
        return dict(sm.bounded_list(args[0], "dict()"), **kwargs)
    if args:
        sm.check_size(len(args[0]), sm.MAX_ITEMS, "dict()")
    return dict(*args, **kwargs)


def _byte_string(kind: type) -> Callable[..., Any]:
    def construct(
        source: Any = b"", encoding: str | None = None, errors: str | None = None
    ) -> Any:
        if isinstance(source, int):
            sm.check_size(source, sm.MAX_CHARS, f"{kind.__name__}()")
            return kind(source)
        if isinstance(source, str):
            return sm.checked(
                kind(source, encoding or "utf-8", errors or "strict"),
                f"{kind.__name__}()",
            )
        if isinstance(source, (bytes, bytearray)):
            return kind(source)
        return kind(sm.bounded_list(source, f"{kind.__name__}()"))

    return construct


def _str(
    value: Any = "", encoding: str | None = None, errors: str | None = None
) -> str:
    if encoding is not None or errors is not None:
        return sm.checked(str(value, encoding or "utf-8", errors or "strict"), "str()")
    return sm.safe_str(value)


def _int(value: Any = 0, base: int | None = None) -> int:
    if base is not None:
        return int(value, base)
    if (
        isinstance(value, sm.decimal.Decimal)
        and value.is_finite()
        and value.adjusted() > 20_000
    ):
        raise sm.refuse("int() of a Decimal with more than 20000 digits")
    return int(value)


def _range(*args: int) -> range:
    span = range(*args)
    try:
        size = len(span)
    except OverflowError:
        size = 1 << 63
    sm.check_size(size, 10 * sm.MAX_ITEMS, "range()")
    return span


def _sorted(
    iterable: Any, /, *, key: Callable[[Any], Any] | None = None, reverse: bool = False
) -> list[Any]:
    items = sm.bounded_list(iterable, "sorted()")
    items.sort(key=key, reverse=reverse)
    return items


def _sum(iterable: Any, /, start: Any = 0) -> Any:
    if not isinstance(start, (int, float, complex, sm.decimal.Decimal)):
        raise TypeError("sum() adds numbers only in plugins; use ''.join() or a loop")
    return sum(iterable, start)


def _round(number: Any, ndigits: int | None = None) -> Any:
    if ndigits is not None and abs(ndigits) > 10_000:
        raise sm.refuse("round() to more than 10000 digits")
    return round(number, ndigits) if ndigits is not None else round(number)


def _iter(iterable: Any) -> Any:
    """iter() with one argument: the two-argument form loops over a callable in C."""
    return iter(iterable)


def _check_attribute_name(name: object) -> str:
    if type(name) is not str:
        raise TypeError("attribute name must be a str")
    if name.startswith("_"):
        raise AttributeError(
            f'"{name}" is an invalid attribute name because it starts with "_"'
        )
    if name in INSPECT_ATTRIBUTES:
        raise AttributeError(f'"{name}" is a restricted name')
    return name


def guarded_getattr_builtin(obj: Any, name: str, default: Any = _MISSING) -> Any:
    """The `getattr` builtin: the compile-time name rules, checked at run time."""
    _check_attribute_name(name)
    try:
        return guarded_getattr(obj, name)
    except AttributeError:
        if default is _MISSING:
            raise
        return default


def guarded_hasattr(obj: Any, name: str) -> bool:
    return guarded_getattr_builtin(obj, name, _MISSING_ATTR) is not _MISSING_ATTR


_MISSING_ATTR = object()


def guarded_setattr(obj: Any, name: str, value: Any) -> None:
    setattr(guarded_write(obj), _check_attribute_name(name), value)


def guarded_delattr(obj: Any, name: str) -> None:
    delattr(guarded_write(obj), _check_attribute_name(name))


_WRITABLE = frozenset(
    {
        dict,
        list,
        bytearray,
        sm.collections.OrderedDict,
        sm.collections.defaultdict,
        sm.collections.Counter,
        sm.collections.deque,
        set,
    }
)


def guarded_write(obj: Any) -> Any:
    """`_write_`: plugins write to plain containers and to their own classes and instances only."""
    kind = type(obj)
    if kind in _WRITABLE or type(kind) is PluginClassMeta or kind is PluginClassMeta:
        return obj
    raise TypeError(
        f"{getattr(kind, '__name__', 'this')} objects are read-only in plugins"
    )


def _setslice(target: Any, piece: slice, value: Any) -> None:
    """`x[a:b] = value`, refusing growth past the size limits."""
    guarded_write(target)
    if not isinstance(value, (list, tuple, str, bytes, bytearray, range)):
        value = sm.bounded_list(value, "a slice assignment")
    sm.check_size(len(target) + len(value), sm.limit_of(target), "a slice assignment")
    target[piece] = value


def _refuse_format(obj: Any, name: str) -> None:
    owner = _real_type(obj)
    is_str = (
        isinstance(owner, str) or isinstance(owner, type) and issubclass(owner, str)
    )
    if name in ("format", "format_map") and is_str:
        raise AttributeError(
            f"str.{name} is not available to plugins (it can read attributes); use an f-string"
        )
    formatter = (
        isinstance(owner, string.Formatter)
        or isinstance(owner, type)
        and issubclass(owner, string.Formatter)
    )
    if formatter and name in ("format", "vformat", "get_field", "get_value"):
        raise AttributeError("string.Formatter is not available to plugins")
    if name == "obj" and isinstance(owner, BaseException):
        raise AttributeError("AttributeError.obj is not available to plugins")


def _padding(width_index: int, keyword: str) -> Callable[..., Any]:
    def guard(
        self: Any,
        method: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        width = args[width_index] if len(args) > width_index else kwargs.get(keyword, 0)
        if isinstance(width, int):
            sm.check_size(width, sm.MAX_CHARS, "a padded string")
        return method(*args, **kwargs)

    return guard


def _guard_expandtabs(
    self: Any, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    size = args[0] if args else kwargs.get("tabsize", 8)
    tab = "\t" if isinstance(self, str) else b"\t"
    sm.check_size(
        len(self) + self.count(tab) * max(size, 0), sm.MAX_CHARS, "expandtabs()"
    )
    return method(*args, **kwargs)


def _guard_replace(
    self: Any, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if (
        len(args) >= 2
        and isinstance(args[0], (str, bytes, bytearray))
        and isinstance(args[1], (str, bytes, bytearray))
    ):
        old, new = args[0], args[1]
        hits = self.count(old) if old else len(self) + 1
        if len(args) > 2 and isinstance(args[2], int) and args[2] >= 0:
            hits = min(hits, args[2])
        sm.check_size(
            len(self) + hits * max(len(new) - len(old), 0), sm.MAX_CHARS, "replace()"
        )
    return method(*args, **kwargs)


def _guard_join(
    self: Any, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    parts = sm.bounded_list(args[0], "join()") if args else []
    total = sum(
        len(part) for part in parts if isinstance(part, (str, bytes, bytearray))
    )
    sm.check_size(total + len(self) * max(len(parts) - 1, 0), sm.MAX_CHARS, "join()")
    return method(parts)


def _guard_translate(
    self: Any, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    table = args[0] if args else kwargs.get("table")
    if isinstance(self, str):
        if not isinstance(table, dict):
            raise TypeError("str.translate takes a dict in plugins (see str.maketrans)")
        longest = max(
            (len(value) for value in table.values() if isinstance(value, str)),
            default=1,
        )
        sm.check_size(len(self) * max(longest, 1), sm.MAX_CHARS, "translate()")
    return method(*args, **kwargs)


def _guard_to_bytes(
    self: Any, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    length = args[0] if args else kwargs.get("length", 1)
    if isinstance(length, int):
        sm.check_size(length, sm.MAX_CHARS, "int.to_bytes()")
    return method(*args, **kwargs)


def _guard_strftime(
    self: Any, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    template = args[0] if args else kwargs.get("format", "")
    if isinstance(template, str) and len(template) > sm.MAX_FORMAT_SPEC:
        raise sm.refuse(
            f"a strftime format of {len(template)} characters (limit {sm.MAX_FORMAT_SPEC})"
        )
    return method(*args, **kwargs)


def _guard_extend(
    self: Any, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    items = args[0] if args else ()
    if not isinstance(
        items, (list, tuple, str, bytes, bytearray, range, dict, set, frozenset)
    ):
        items = sm.bounded_list(items, "extend()")
    sm.check_size(len(self) + len(items), sm.limit_of(self), "extend()")
    return method(items)


def _post_check(
    self: Any, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    result = method(*args, **kwargs)
    if isinstance(result, list):
        sm.check_size(len(result), sm.MAX_ITEMS, "a split")
        return result
    return sm.checked(result, "a string method")


def _guard_elements(
    self: Any, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    return sm.ticking(method(*args, **kwargs))


_TEXT = (str, bytes, bytearray)
_DATES = (sm.datetime.date, sm.datetime.time)
# attribute name -> (owner types it guards, guard(self, bound method, args, kwargs))
_METHOD_GUARDS: dict[str, tuple[tuple[type, ...], Callable[..., Any]]] = {
    "ljust": (_TEXT, _padding(0, "width")),
    "rjust": (_TEXT, _padding(0, "width")),
    "center": (_TEXT, _padding(0, "width")),
    "zfill": (_TEXT, _padding(0, "width")),
    "expandtabs": (_TEXT, _guard_expandtabs),
    "replace": (_TEXT, _guard_replace),
    "join": (_TEXT, _guard_join),
    "translate": (_TEXT, _guard_translate),
    "encode": ((str,), _post_check),
    "decode": ((bytes, bytearray), _post_check),
    "hex": ((bytes, bytearray), _post_check),
    "split": (_TEXT, _post_check),
    "rsplit": (_TEXT, _post_check),
    "splitlines": (_TEXT, _post_check),
    "to_bytes": ((int,), _guard_to_bytes),
    "strftime": (_DATES, _guard_strftime),
    "extend": ((list, bytearray, sm.collections.deque), _guard_extend),
    "extendleft": ((sm.collections.deque,), _guard_extend),
    "elements": ((sm.collections.Counter,), _guard_elements),
}
_SPECIAL_NAMES = (
    frozenset(_METHOD_GUARDS)
    | INSPECT_ATTRIBUTES
    | {"format", "format_map", "vformat", "get_field", "get_value", "obj"}
)


def guarded_getattr(obj: Any, name: str) -> Any:
    """`_getattr_`: names were checked at compile time; special names get refused or guarded."""
    if name in _SPECIAL_NAMES:
        return _special_getattr(obj, name)
    return getattr(obj, name)


def _special_getattr(obj: Any, name: str) -> Any:
    if name in INSPECT_ATTRIBUTES:
        raise AttributeError(f'"{name}" is a restricted name')
    _refuse_format(obj, name)
    entry = _METHOD_GUARDS.get(name)
    if entry is None:
        return getattr(obj, name)
    owners, guard = entry
    if type(obj) is super:
        raise AttributeError(f"{name} is not available through super() in plugins")
    real = _real_type(obj)
    if isinstance(real, type) and issubclass(real, owners):
        descriptor = getattr(real, name)

        def unbound(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not isinstance(self, real):
                raise TypeError(f"{real.__name__}.{name} needs a {real.__name__}")
            return guard(self, lambda *a, **k: descriptor(self, *a, **k), args, kwargs)

        return unbound
    if isinstance(obj, owners):
        method = getattr(obj, name)
        return lambda *args, **kwargs: guard(obj, method, args, kwargs)
    return getattr(obj, name)


def guarded_inplace(op: str, target: Any, value: Any) -> Any:
    """`_inplacevar_` for `x op= y` on names: the same guards as the binary operators."""
    if op == "+=":
        if isinstance(target, (list, bytearray, sm.collections.deque)):
            _guard_extend(target, lambda items: None, (value,), {})
            target += value
            return target
        return sm.guarded_add(target, value)
    if op == "*=":
        return sm.guarded_mul(target, value)
    if op == "**=":
        return sm.guarded_pow(target, value)
    if op == "<<=":
        return sm.guarded_lshift(target, value)
    if op == "%=":
        return sm.guarded_mod(target, value)
    return _INPLACE[op](target, value)


_INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "-=": operator.isub,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    ">>=": operator.irshift,
    "&=": operator.iand,
    "|=": operator.ior,
    "^=": operator.ixor,
    "@=": operator.imatmul,
}


def _format_field(value: Any, conversion: int, spec: str) -> str:
    """One f-string field: `{value!conversion:spec}` with bounded text and width."""
    if conversion == -1 and not spec and type(value) is str:
        return value
    if conversion == 115:  # !s
        value = sm.safe_str(value)
    elif conversion in (114, 97):  # !r, !a
        value = (
            sm.safe_repr(value)
            if conversion == 114
            else ascii(sm.safe_repr(value))[1:-1]
        )
    return sm.safe_format(value, spec)


def _join_fields(*parts: str) -> str:
    sm.check_size(sum(map(len, parts)), sm.MAX_CHARS, "an f-string")
    return "".join(parts)


def _apply(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return function(*args, **kwargs)


class PrintCollector:
    """`_print_`: print() forwards each line to the call's log, up to the call's output cap."""

    def __init__(self, _getattr_: Any = None) -> None:
        self.text: list[str] = []

    def _call_print(
        self,
        *objects: Any,
        sep: str | None = " ",
        end: str | None = "\n",
        file: Any = None,
        flush: bool = False,
    ) -> None:
        if file is not None:
            raise TypeError("print(file=...) is not available to plugins")
        sep = " " if sep is None else sep
        if type(sep) is not str or end is not None and type(end) is not str:
            raise TypeError("sep and end must be str")
        line = _join_fields(
            *(
                sm.safe_str(sep) if i % 2 else sm.safe_str(obj)
                for i, obj in enumerate(_interleave(objects))
            )
        )
        budget = sm.current()
        size = len(line) + 1
        if budget.output_left >= size:
            budget.output_left -= size
            self.text.append(line + ("\n" if end is None else end))
            budget.log("log", line)
        elif budget.output_left >= 0:
            budget.output_left = -1
            budget.log(
                "warn",
                "further print output of this call was dropped (output limit reached)",
            )

    def __call__(self) -> str:
        return "".join(self.text)


def _interleave(objects: tuple[Any, ...]) -> list[Any]:
    """[a, b, c] -> [a, None, b, None, c]: the odd slots stand for the separator."""
    out: list[Any] = []
    for index, obj in enumerate(objects):
        if index:
            out.append(None)
        out.append(obj)
    return out


_SAFE_EXCEPTIONS = (
    "ArithmeticError AssertionError AttributeError BaseException Exception IndexError KeyError LookupError "
    "NameError NotImplementedError OverflowError RecursionError RuntimeError StopIteration TypeError "
    "UnboundLocalError UnicodeError UnicodeDecodeError UnicodeEncodeError ValueError ZeroDivisionError "
    "ImportError ModuleNotFoundError MemoryError Warning UserWarning DeprecationWarning"
)
_PLAIN_BUILTINS = (
    "abs all any bool callable chr divmod enumerate filter float hash hex oct bin isinstance issubclass len "
    "map max min next ord reversed zip complex property staticmethod classmethod super"
)


def plugin_builtins(importer: Callable[..., Any]) -> dict[str, Any]:
    """The builtins of one plugin instance: the names plugins can see, plus the guard helpers.

    Not handed in: open, exec, eval, compile, globals, locals, vars, dir, type, object, id,
    input, help, breakpoint, memoryview, slice, iter(callable, sentinel), __import__ (ours only).
    """
    names: dict[str, Any] = {
        name: getattr(builtins, name)
        for name in (_SAFE_EXCEPTIONS + " " + _PLAIN_BUILTINS).split()
    }
    names.update(
        {
            "True": True,
            "False": False,
            "None": None,
            "NotImplemented": NotImplemented,
            "Ellipsis": Ellipsis,
            "list": GuardedType(list, _materialize(list, "list()")),
            "tuple": GuardedType(tuple, _materialize(tuple, "tuple()")),
            "set": GuardedType(set, _materialize(set, "set()")),
            "frozenset": GuardedType(frozenset, _materialize(frozenset, "frozenset()")),
            "dict": GuardedType(dict, _dict),
            "bytes": GuardedType(bytes, _byte_string(bytes)),
            "bytearray": GuardedType(bytearray, _byte_string(bytearray)),
            "str": GuardedType(str, _str),
            "int": GuardedType(int, _int),
            "range": GuardedType(range, _range),
            "sorted": _sorted,
            "sum": _sum,
            "round": _round,
            "pow": sm.guarded_pow,
            "repr": sm.safe_repr,
            "format": sm.safe_format,
            "iter": _iter,
            "getattr": guarded_getattr_builtin,
            "hasattr": guarded_hasattr,
            "setattr": guarded_setattr,
            "delattr": guarded_delattr,
            "__import__": importer,
            "__build_class__": builtins.__build_class__,
            "__metaclass__": PluginClassMeta,
            "_getattr_": guarded_getattr,
            "_getitem_": operator.getitem,
            "_getiter_": iter,
            "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
            "_unpack_sequence_": guarded_unpack_sequence,
            "_write_": guarded_write,
            "_inplacevar_": guarded_inplace,
            "_apply_": _apply,
            "_print_": PrintCollector,
            "_tick_": sm.tick,
            "_enter_": sm.enter,
            "_mul_": sm.guarded_mul,
            "_pow_": sm.guarded_pow,
            "_lshift_": sm.guarded_lshift,
            "_add_": sm.guarded_add,
            "_mod_": sm.guarded_mod,
            "_fmt_": _format_field,
            "_fjoin_": _join_fields,
            "_setslice_": _setslice,
            "_slice_": slice,
        }
    )
    return names


# ---- instances and calls ---------------------------------------------------------------------


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
        self._modules = sm.instance_modules()
        self._namespaces: dict[str, dict[str, Any]] = {}
        self._globals_ids: set[int] = set()
        self._builtins = plugin_builtins(self._import)

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
            name = (
                name.partition(".")[0]
                if name.partition(".")[0] in sm.PACKAGES
                else name
            )
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
                for key, value in jobs.items()
            }

    def _own_function(self, value: Any, name: str) -> Callable[..., Any]:
        if not self._is_own(value):
            raise PluginRuntimeError(
                f"{name} must be a function defined in the plugin",
                file=f"{self.compiled.main}.py",
                line=None,
            )
        return value  # type: ignore[no-any-return]

    def _is_own(self, value: Any) -> bool:
        return (
            isinstance(value, types.FunctionType)
            and id(value.__globals__) in self._globals_ids
        )

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
            "scheduled_tasks": [
                name for name in SCHEDULED_TASKS if name in self.exports
            ],
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
            raise ValueError(
                "PluginInstance.call runs functions of this plugin instance only"
            )
        budget = sm.Budget(
            timeout=timeout,
            log=log,
            max_depth=limits.max_depth,
            max_output=limits.max_output_bytes,
            rss_growth_limit=limits.max_memory_growth,
        )
        sm.push(budget)
        try:
            result = fn(*args)
        except BaseException as exc:
            raise self._translate(exc, timeout) from exc
        finally:
            sm.pop(budget)
        return (
            None
            if _host
            else export_value(result, limits.max_result_bytes, self._where(None))
        )

    def _plugin_frames(self, exc: BaseException) -> list[tuple[str, int, str]]:
        frames = []
        tb = exc.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            if id(frame.f_globals) in self._globals_ids:
                frames.append(
                    (frame.f_code.co_filename, tb.tb_lineno, frame.f_code.co_name)
                )
            tb = tb.tb_next
        return frames

    def _where(self, exc: BaseException | None) -> tuple[str | None, int | None, str]:
        frames = self._plugin_frames(exc) if exc is not None else []
        if not frames:
            return f"{self.compiled.main}.py", None, ""
        text = "\n".join(
            f"{file}:{line} in {function}" for file, line, function in frames
        )
        return frames[-1][0], frames[-1][1], text

    def _translate(self, exc: BaseException, timeout: float) -> SandboxError:
        file, line, trace = self._where(exc)
        if isinstance(exc, sm.Abort):
            error = exc.error
            if isinstance(error, PluginTimeout):
                return PluginTimeout(timeout, file=file, line=line, traceback=trace)
            if isinstance(error, PluginResourceError):
                return PluginResourceError(
                    error.message, file=file, line=line, traceback=trace
                )
            return error
        if isinstance(exc, RecursionError):
            return PluginResourceError(
                "recursion too deep", file=file, line=line, traceback=trace
            )
        if isinstance(exc, MemoryError):
            return PluginResourceError(
                "out of memory", file=file, line=line, traceback=trace
            )
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
    """The text of a plugin exception, bounded (its args may be huge or self-similar)."""
    try:
        sm.estimate_size(exc, MAX_MESSAGE_CHARS * 50, "an error message")
        text = str(exc)
    except sm.Abort:
        return "(the error message is too large to show)"
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + "..."


def export_value(
    value: Any,
    max_bytes: int,
    where: tuple[str | None, int | None, str] = (None, None, ""),
) -> Any:
    """A plain-data copy of what plugin code returned, or PluginRuntimeError/PluginResourceError.

    Only dicts with str keys, lists/tuples, str, int, float, bool and None leave the sandbox;
    copies are built with the base types' own methods, so no plugin-defined method runs here.
    One pass: the copy counts its JSON-ish size and stops past `max_bytes`, so a self-similar
    structure is refused before it is expanded.
    """
    file, line, _ = where
    budget = [max_bytes]
    return _copy_plain(value, 0, budget, file, line)


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _copy_plain(
    value: Any, depth: int, budget: list[int], file: str | None, line: int | None
) -> Any:
    """Copy one value; scalars inside containers are handled inline (most of an event)."""
    kind = type(value)
    if kind in _SCALARS:
        budget[0] -= len(value) + 3 if kind is str else 8
        copy: Any = value
    elif depth >= MAX_RESULT_DEPTH:
        raise PluginResourceError(
            f"the returned value is nested deeper than {MAX_RESULT_DEPTH}",
            file=file,
            line=line,
        )
    elif isinstance(value, dict):
        copy = {}
        size = 2
        for key, item in dict.items(value):
            if type(key) is not str:
                raise PluginRuntimeError(
                    f"returned a dict with a {type(key).__name__} key; keys must be str",
                    file=file,
                    line=line,
                )
            item_kind = type(item)
            if item_kind is str:
                size += len(key) + len(item) + 7
                copy[key] = item
            elif item_kind in _SCALARS:
                size += len(key) + 12
                copy[key] = item
            else:
                budget[0] -= size + len(key)
                size = 0
                copy[key] = _copy_plain(item, depth + 1, budget, file, line)
        budget[0] -= size
    elif isinstance(value, (list, tuple)):
        budget[0] -= 2 + 2 * len(value)
        items = (
            list.__iter__(value) if isinstance(value, list) else tuple.__iter__(value)
        )
        copy = [
            item
            if type(item) in _SCALARS and type(item) is not str
            else _copy_plain(item, depth + 1, budget, file, line)
            for item in items
        ]
    elif isinstance(value, str):
        budget[0] -= len(value) + 3
        copy = str.__str__(value)
    elif isinstance(value, (int, float)):
        budget[0] -= 8
        copy = (
            int.__index__(value) if isinstance(value, int) else float.__float__(value)
        )
    else:
        raise PluginRuntimeError(
            f"returned a {kind.__name__}; plugins may return only dict, list, str, int, float, bool or None",
            file=file,
            line=line,
        )
    if budget[0] < 0:
        raise PluginResourceError(
            "the returned value is larger than the result size limit",
            file=file,
            line=line,
        )
    return copy
