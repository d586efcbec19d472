"""The compile-time policy: what plugin source may say, and the rewrites that make it checkable.

`compile_sources(sources, main=...)` compiles every file of a plugin (flat `name.py` names) with
RestrictedPython and `PluginPolicy`, or raises `PolicyViolation` listing every refusal of every
file with its line. Nothing runs here.

On top of RestrictedPython's policy (which turns attribute, item, iteration and write access into
calls of guards and refuses names starting with "_"), `PluginPolicy`:

- allows imports of the safe modules (`vm.safe_modules`) and of the plugin's own files only, and
  `from m import x` only for members `m` really has;
- inserts `_tick_()` into every loop body, comprehension and lambda, and `_enter_()` with a
  `finally` that leaves again at every function entry (generators only tick: a suspended
  generator is not on the stack) -- see `vm.budget`;
- rewrites `*`, `**`, `<<`, `+`, `%` and f-strings into guarded helpers that check result sizes
  before computing (`vm.sizes`), and `x[a:b] = v` into a guarded slice store (`vm.guards`);
- fixes the line numbers of the class statements RestrictedPython rebuilds.
"""

from __future__ import annotations

import ast
import re
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from RestrictedPython.compile import compile_restricted_exec
from RestrictedPython.transformer import RestrictingNodeTransformer, copy_locations

from vm.errors import PolicyViolation, Violation
from vm.safe_modules import PACKAGES, SAFE_MODULE_NAMES, module_members

MAX_SOURCE_CHARS = 1_000_000  # all files of one plugin

_GUARDED_BINOPS: dict[type[ast.operator], str] = {
    ast.Mult: "_mul_",
    ast.Pow: "_pow_",
    ast.LShift: "_lshift_",
    ast.Add: "_add_",
    ast.Mod: "_mod_",
}
_LINE = re.compile(r"^Line (\d+|None): (.*)$", re.DOTALL)


_Node = TypeVar("_Node", bound=ast.AST)


def _visited(result: ast.AST | Iterable[ast.AST] | None, kind: type[_Node]) -> _Node:
    """The node a RestrictedPython `visit_*` we extend returned: typed as any visitor result, it is
    always one node of the visited kind (the same one, or a rebuilt class statement)."""
    if not isinstance(result, kind):
        raise TypeError(f"RestrictedPython turned a {kind.__name__} into {type(result).__name__}")
    return result


def _call(name: str, *args: ast.expr) -> ast.Call:
    return ast.Call(func=ast.Name(name, ast.Load()), args=list(args), keywords=[])


def _is_generator(node: ast.FunctionDef) -> bool:
    """Whether `node` itself (not a nested function) yields."""
    stack: list[ast.AST] = list(node.body)
    while stack:
        child = stack.pop()
        if isinstance(child, (ast.Yield, ast.YieldFrom)):
            return True
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(child))
    return False


class PluginPolicy(RestrictingNodeTransformer):
    """RestrictedPython's policy plus imports, ticks, recursion depth and size guards.

    `source_modules` (set per compile) are the plugin's own files, importable by name.
    """

    source_modules: frozenset[str] = frozenset()

    def _check_module(self, node: ast.AST, module: str | None) -> bool:
        if module in SAFE_MODULE_NAMES or module in PACKAGES or module in self.source_modules:
            return True
        self.error(
            node,
            f"import of {module!r} is not allowed (plugins may import: {', '.join(sorted(SAFE_MODULE_NAMES))}, and their own files)",
        )
        return False

    def visit_Import(self, node: ast.Import) -> Any:
        for alias in node.names:
            self._check_module(node, alias.name)
        return super().visit_Import(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> Any:
        if node.level:
            self.error(node, "relative imports are not allowed; import plugin files by name")
        elif self._check_module(node, node.module) and node.module in SAFE_MODULE_NAMES | set(PACKAGES):
            members = PACKAGES.get(node.module) or module_members(node.module)
            for alias in node.names:
                if alias.name != "*" and alias.name not in members:
                    self.error(node, f"{node.module}.{alias.name} is not available to plugins")
        return super().visit_ImportFrom(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> Any:
        """RestrictedPython rebuilds the class statement from a template on line 1: fix its lines."""
        rebuilt = _visited(super().visit_ClassDef(node), ast.ClassDef)
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
        node = _visited(super().visit_FunctionDef(node), ast.FunctionDef)
        if _is_generator(node):
            # A suspended generator is not on the stack: tick only, no depth bookkeeping. A
            # generator dropped after its call is finalized later, wherever the GC drops it: its
            # `finally` then aborts at a tick (`vm.budget.owned_ticks`), and the abort ends the
            # generator quietly instead of surfacing as an "Exception ignored" on the host.
            quiet = ast.ExceptHandler(
                type=ast.Name("_Abort_", ast.Load()),
                name=None,
                body=[
                    ast.If(
                        test=_call("_abandoned_"),
                        body=[ast.Return(value=None)],
                        orelse=[],
                    ),
                    ast.Raise(exc=None, cause=None),
                ],
            )
            guarded = ast.Try(body=node.body, handlers=[quiet], orelse=[], finalbody=[])
            node.body = [ast.Expr(_call("_tick_")), guarded]
        else:
            leave = ast.AugAssign(
                target=ast.Attribute(ast.Name("_sb_", ast.Load()), "depth", ast.Store()),
                op=ast.Sub(),
                value=ast.Constant(1),
            )
            guarded = ast.Try(body=node.body, handlers=[], orelse=[], finalbody=[leave])
            node.body = [
                ast.Assign(targets=[ast.Name("_sb_", ast.Store())], value=_call("_enter_")),
                guarded,
            ]
        for statement in node.body:
            copy_locations(statement, node)
        return node

    def visit_Lambda(self, node: ast.Lambda) -> Any:
        node = _visited(super().visit_Lambda(node), ast.Lambda)
        node.body = ast.BoolOp(op=ast.And(), values=[_call("_tick_"), node.body])
        copy_locations(node.body, node)
        return node

    def _tick_first(self, node: ast.For | ast.While) -> ast.For | ast.While:
        tick = ast.Expr(_call("_tick_"))
        copy_locations(tick, node)
        node.body.insert(0, tick)
        return node

    def visit_For(self, node: ast.For) -> Any:
        return self._tick_first(_visited(super().visit_For(node), ast.For))

    def visit_While(self, node: ast.While) -> Any:
        return self._tick_first(_visited(super().visit_While(node), ast.While))

    def visit_comprehension(self, node: ast.comprehension) -> Any:
        node = _visited(super().visit_comprehension(node), ast.comprehension)
        tick = _call("_tick_")
        copy_locations(tick, node.iter)
        node.ifs.insert(0, tick)
        return node

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        node = _visited(super().visit_BinOp(node), ast.BinOp)
        helper = _GUARDED_BINOPS.get(type(node.op))
        both_constant = isinstance(node.left, ast.Constant) and isinstance(node.right, ast.Constant)
        if helper is None or (both_constant and helper != "_pow_" and helper != "_mul_"):
            return node
        if helper == "_add_" and (isinstance(node.left, ast.Constant) or isinstance(node.right, ast.Constant)):
            return node  # `x + 1`, `s + "!"`: grows by a constant, cannot double
        guarded = _call(helper, node.left, node.right)
        copy_locations(guarded, node)
        return guarded

    def visit_JoinedStr(self, node: ast.JoinedStr) -> Any:
        """f-strings become `_fjoin_(...)` of `_fmt_(value, conversion, spec)`: bounded widths and text."""
        node = _visited(super().visit_JoinedStr(node), ast.JoinedStr)
        parts: list[ast.expr] = []
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                spec = value.format_spec if value.format_spec is not None else ast.Constant("")
                parts.append(_call("_fmt_", value.value, ast.Constant(value.conversion), spec))
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
        if len(node.targets) == 1 and isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Slice):
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
        if not isinstance(node.ctx, ast.Load) and isinstance(node.slice, ast.Slice) and isinstance(node.ctx, ast.Store):
            self.error(
                node,
                "slice assignment is only allowed as a single `x[a:b] = value` statement",
            )
        return super().visit_Subscript(node)


def _violations(file: str, messages: Sequence[str]) -> list[Violation]:
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
        elif stem in SAFE_MODULE_NAMES or stem in PACKAGES:
            problems.append(Violation(name, None, f"a plugin file may not shadow the module {stem!r}"))
    if sum(len(text) for text in sources.values()) > MAX_SOURCE_CHARS:
        problems.append(Violation(main, None, f"the plugin's sources exceed {MAX_SOURCE_CHARS} characters"))
    return problems


def compile_sources(sources: Mapping[str, str], *, main: str = "main.py") -> dict[str, types.CodeType]:
    """Compile every file under the policy: module name (file name without `.py`) -> code."""
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
            problems.append(Violation(name, None, f"cannot compile: {type(exc).__name__}: {exc}"))
            continue
        if result.errors:
            problems.extend(_violations(name, result.errors))
        else:
            assert result.code is not None, "RestrictedPython returns code whenever it reports no errors"
            codes[name[:-3]] = result.code
    if problems:
        raise PolicyViolation(problems)
    return codes
