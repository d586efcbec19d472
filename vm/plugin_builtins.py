"""The builtins of a plugin instance: the names plugins see, and the helpers the policy calls.

Materializing builtins (`list`, `tuple`, `dict`, `set`, `sorted`, `bytes`, `bytearray`, `str`,
`repr`, `format`, `range`, `int`, `round`, `sum`, `pow`) are guarded: they refuse results past the
size limits of `vm.sizes` before computing them, and iterate at most `MAX_ITEMS` items; `int` with
a base, `pow` with a modulus, ints of Decimals and codecs are bounded in work too. `map`, `filter`,
`zip` and `enumerate` are `LazyIterator`s of bounded nesting depth. `print`
forwards to the call's log up to its output cap. The helper names the policy inserts (`_tick_`,
`_enter_`, `_mul_`, `_fmt_`, `_getattr_`, `_write_`, ...) live here too, where plugin code cannot
name them (names starting with "_" are refused at compile time).
"""

from __future__ import annotations

import builtins
import decimal
import operator
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Self

from RestrictedPython.Guards import (
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
)

from vm.budget import Abort, current, owned_ticks, refuse, tick
from vm.guards import (
    GuardedType,
    PluginClassMeta,
    guarded_delattr,
    guarded_getattr,
    guarded_getattr_builtin,
    guarded_hasattr,
    guarded_inplace,
    guarded_setattr,
    guarded_setslice,
    guarded_write,
)
from vm.sizes import (
    MAX_CHARS,
    MAX_ITEMS,
    bounded_list,
    check_codec,
    check_decimal,
    check_int_text,
    check_size,
    checked,
    guarded_add,
    guarded_lshift,
    guarded_mod,
    guarded_mul,
    guarded_pow,
    safe_format,
    safe_repr,
    safe_str,
)

_MISSING = object()


class RetryError(Exception):
    """PostHog's RetryError: a plugin raises it from `export_events` (or a job) to ask for a
    retry later, with backoff (plugin_server/plugins/hooks.py); any other exception means "do not retry"."""


def _materialize(kind: type, what: str) -> Callable[..., Any]:
    def construct(iterable: Any = _MISSING, /) -> Any:
        return kind() if iterable is _MISSING else kind(bounded_list(iterable, what))

    return construct


def _dict(*args: Any, **kwargs: Any) -> dict[Any, Any]:
    if args and not isinstance(args[0], Mapping):
        return dict(bounded_list(args[0], "dict()"), **kwargs)
    if args:
        check_size(len(args[0]), MAX_ITEMS, "dict()")
    return dict(*args, **kwargs)


def _byte_string(kind: type) -> Callable[..., Any]:
    def construct(source: Any = b"", encoding: str | None = None, errors: str | None = None) -> Any:
        if isinstance(source, int):
            check_size(source, MAX_CHARS, f"{kind.__name__}()")
            return kind(source)
        if isinstance(source, str):
            check_codec(encoding)
            return checked(
                kind(source, encoding or "utf-8", errors or "strict"),
                f"{kind.__name__}()",
            )
        if isinstance(source, (bytes, bytearray)):
            return kind(source)
        return kind(bounded_list(source, f"{kind.__name__}()"))

    return construct


def _str(value: Any = "", encoding: str | None = None, errors: str | None = None) -> str:
    if encoding is not None or errors is not None:
        check_codec(encoding)
        return checked(str(value, encoding or "utf-8", errors or "strict"), "str()")
    return safe_str(value)


def _int(value: Any = 0, base: int | None = None) -> int:
    if base is not None:
        check_int_text(value, base)
        return int(value, base)
    check_decimal(value, "int()")
    return int(value)


# The bases of plugin subclasses of int, str, bytes and bytearray (`GuardedType`'s `base`): their
# constructors are the real types' and would take `I("f" * 10**7, 16)` or `S(b, "punycode")`
# unchecked, so these make the guarded constructor's checks first.


class _CheckedInt(int):
    __slots__ = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        return int.__new__(cls, _int(*args, **kwargs))


class _CheckedStr(str):
    __slots__ = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        return str.__new__(cls, _str(*args, **kwargs))


class _CheckedBytes(bytes):
    __slots__ = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        return bytes.__new__(cls, _byte_string(bytes)(*args, **kwargs))


class _CheckedBytearray(bytearray):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(_byte_string(bytearray)(*args, **kwargs))


def _range(*args: int) -> range:
    span = range(*args)
    try:
        size = len(span)
    except OverflowError:
        size = 1 << 63
    check_size(size, 10 * MAX_ITEMS, "range()")
    return span


def _sorted(iterable: Any, /, *, key: Callable[[Any], Any] | None = None, reverse: bool = False) -> list[Any]:
    items = bounded_list(iterable, "sorted()")
    items.sort(key=key, reverse=reverse)
    return items


def _sum(iterable: Any, /, start: Any = 0) -> Any:
    if not isinstance(start, (int, float, complex, decimal.Decimal)):
        raise TypeError("sum() adds numbers only in plugins; use ''.join() or a loop")
    return sum(iterable, start)


def _round(number: Any, ndigits: int | None = None) -> Any:
    if ndigits is not None and abs(ndigits) > 10_000:
        raise refuse("round() to more than 10000 digits")
    if ndigits is None:
        check_decimal(number, "round()")
        return round(number)
    return round(number, ndigits)


# C iterators that wrap iterators (map, filter, zip, enumerate) nest without a recursion check:
# `map` nested a million deep, then next(), overflows the C stack. Plugins get them wrapped in a
# `LazyIterator` that knows its nesting depth, refused past MAX_LAZY_DEPTH; its Python `__next__`
# also puts a frame (counted by Python's recursion limit) and a tick between any two C levels.
MAX_LAZY_DEPTH = 100


class LazyIterator:
    __slots__ = ("_depth", "_inner")
    _depth: int
    _inner: Iterator[Any]

    def __init__(self, inner: Any, sources: tuple[Any, ...], what: str) -> None:
        depth = 1 + max((source._depth for source in sources if type(source) is LazyIterator), default=0)
        if depth > MAX_LAZY_DEPTH:
            raise refuse(f"{what} nested more than {MAX_LAZY_DEPTH} deep")
        self._inner = inner
        self._depth = depth

    def __iter__(self) -> LazyIterator:
        return self

    def __next__(self) -> Any:
        tick()
        return next(self._inner)

    def __repr__(self) -> str:
        return "<lazy iterator>"


def _map(function: Any, iterable: Any, /, *iterables: Any) -> LazyIterator:
    return LazyIterator(map(function, iterable, *iterables), (iterable, *iterables), "map()")


def _filter(function: Any, iterable: Any, /) -> LazyIterator:
    return LazyIterator(filter(function, iterable), (iterable,), "filter()")


def _zip(*iterables: Any, strict: bool = False) -> LazyIterator:
    return LazyIterator(zip(*iterables, strict=strict), iterables, "zip()")


def _enumerate(iterable: Any, start: int = 0) -> LazyIterator:
    return LazyIterator(enumerate(iterable, start), (iterable,), "enumerate()")


def _iter(iterable: Any) -> Any:
    """iter() with one argument: the two-argument form loops over a callable in C."""
    return iter(iterable)


def _format_field(value: Any, conversion: int, spec: str) -> str:
    """One f-string field: `{value!conversion:spec}` with bounded text and width."""
    if conversion == -1 and not spec and type(value) is str:
        return value
    if conversion == 115:  # !s
        value = safe_str(value)
    elif conversion in (114, 97):  # !r, !a
        value = safe_repr(value) if conversion == 114 else ascii(safe_repr(value))[1:-1]
    return safe_format(value, spec)


def _join_fields(*parts: str) -> str:
    check_size(sum(map(len, parts)), MAX_CHARS, "an f-string")
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
        line = _join_fields(*(safe_str(sep) if i % 2 else safe_str(obj) for i, obj in enumerate(_interleave(objects))))
        budget = current()
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
    "abs all any bool callable chr divmod float hash hex oct bin isinstance issubclass len "
    "max min next ord reversed complex property staticmethod classmethod super"
)


def plugin_builtins(importer: Callable[..., Any], owner: object = None) -> dict[str, Any]:
    """The builtins of one plugin instance: the names plugins can see, plus the guard helpers.

    Not handed in: open, exec, eval, compile, globals, locals, vars, dir, type, object, id,
    input, help, breakpoint, memoryview, slice, iter(callable, sentinel), __import__ (ours only).
    """
    tick, enter, abandoned = owned_ticks(object() if owner is None else owner)
    names: dict[str, Any] = {
        name: getattr(builtins, name) for name in (_SAFE_EXCEPTIONS + " " + _PLAIN_BUILTINS).split()
    }
    names.update(
        {
            "True": True,
            "False": False,
            "None": None,
            "NotImplemented": NotImplemented,
            "Ellipsis": Ellipsis,
            "RetryError": RetryError,
            "list": GuardedType(list, _materialize(list, "list()")),
            "tuple": GuardedType(tuple, _materialize(tuple, "tuple()")),
            "set": GuardedType(set, _materialize(set, "set()")),
            "frozenset": GuardedType(frozenset, _materialize(frozenset, "frozenset()")),
            "dict": GuardedType(dict, _dict),
            "bytes": GuardedType(bytes, _byte_string(bytes), _CheckedBytes),
            "bytearray": GuardedType(bytearray, _byte_string(bytearray), _CheckedBytearray),
            "str": GuardedType(str, _str, _CheckedStr),
            "int": GuardedType(int, _int, _CheckedInt),
            "range": GuardedType(range, _range),
            "map": _map,
            "filter": _filter,
            "zip": _zip,
            "enumerate": _enumerate,
            "sorted": _sorted,
            "sum": _sum,
            "round": _round,
            "pow": guarded_pow,
            "repr": safe_repr,
            "format": safe_format,
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
            "_tick_": tick,
            "_enter_": enter,
            "_Abort_": Abort,
            "_abandoned_": abandoned,
            "_mul_": guarded_mul,
            "_pow_": guarded_pow,
            "_lshift_": guarded_lshift,
            "_add_": guarded_add,
            "_mod_": guarded_mod,
            "_fmt_": _format_field,
            "_fjoin_": _join_fields,
            "_setslice_": guarded_setslice,
            "_slice_": slice,
        }
    )
    return names
