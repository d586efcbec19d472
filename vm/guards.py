"""Run-time guards: what plugin code may read, write and call on the objects it can reach.

RestrictedPython turns `x.name` into `_getattr_(x, "name")`, `x.a = v` / `x[k] = v` into writes on
`_write_(x)`, and `x op= y` into `_inplacevar_`; these are our implementations:

- `guarded_getattr`: names were checked at compile time; at run time the special names are refused
  (`str.format`/`format_map` and `string.Formatter`, which read attributes: CVE-2023-41039;
  `AttributeError.obj`: CVE-2024-47532; RestrictedPython's INSPECT_ATTRIBUTES such as `gi_frame`:
  CVE-2023-37271) or guarded: the padding/joining/replacing methods of str/bytes/list (`ljust`,
  `center`, `zfill`, `expandtabs`, `replace`, `join`, `translate`, `to_bytes`, `extend`, `split`,
  ...) check result sizes before they allocate, also when taken unbound from the type.
- `getattr`/`hasattr`/`setattr`/`delattr` builtins apply the compile-time name rules at run time.
- `guarded_write`: plugins write to plain containers and to their own classes and instances only,
  never to modules, functions or handed-in objects.
- `GuardedType`: a builtin type handed in through a guarded constructor (`list`, `str`, ...) that
  still works for `isinstance`, subclassing and unbound methods; `PluginClassMeta` marks classes
  defined by plugin code.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import operator
import string
from collections.abc import Callable
from typing import Any

from RestrictedPython.transformer import INSPECT_ATTRIBUTES

from vm.budget import refuse, ticking
from vm.sizes import (
    MAX_CHARS,
    MAX_FORMAT_SPEC,
    MAX_INT_BITS,
    MAX_ITEMS,
    bounded_list,
    check_codec,
    check_decimal,
    check_size,
    checked,
    guarded_add,
    guarded_lshift,
    guarded_mod,
    guarded_mul,
    guarded_pow,
    limit_of,
)

_MISSING = object()


class PluginClassMeta(type):
    """Metaclass of every class a plugin defines: marks instances as the plugin's to write."""


class GuardedType:
    """A builtin type handed in through a guarded constructor.

    `isinstance(x, list)`, `class D(dict)`, `dict.fromkeys` and `str.lower` keep working: the
    checks and the attributes are those of the real type. A plugin's subclass (`__mro_entries__`)
    derives from `base`: the real type, or a subclass of it whose constructor makes the guarded
    constructor's checks (`class I(int)` would otherwise take `I("f" * 10**7, 16)` unchecked).
    """

    __slots__ = ("_base", "_construct", "_real")

    def __init__(self, real: type, construct: Callable[..., Any], base: type | None = None) -> None:
        object.__setattr__(self, "_real", real)
        object.__setattr__(self, "_construct", construct)
        object.__setattr__(self, "_base", real if base is None else base)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._construct(*args, **kwargs)

    def __instancecheck__(self, instance: object) -> bool:
        return isinstance(instance, self._real)

    def __subclasscheck__(self, subclass: type) -> bool:
        return issubclass(subclass, self._real)

    def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[type]:
        return (self._base,)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def __getitem__(self, item: Any) -> Any:
        return self._real[item]

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{self._real.__name__} is read-only")

    def __repr__(self) -> str:
        return repr(self._real)


def real_type(value: Any) -> Any:
    return value._real if type(value) is GuardedType else value


def _check_attribute_name(name: object) -> str:
    if type(name) is not str:
        raise TypeError("attribute name must be a str")
    if name.startswith("_"):
        raise AttributeError(f'"{name}" is an invalid attribute name because it starts with "_"')
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
        collections.OrderedDict,
        collections.defaultdict,
        collections.Counter,
        collections.deque,
        set,
    }
)


def guarded_write(obj: Any) -> Any:
    """`_write_`: plugins write to plain containers and to their own classes and instances only."""
    kind = type(obj)
    if kind in _WRITABLE or type(kind) is PluginClassMeta or kind is PluginClassMeta:
        return obj
    raise TypeError(f"{getattr(kind, '__name__', 'this')} objects are read-only in plugins")


def guarded_setslice(target: Any, piece: slice, value: Any) -> None:
    """`x[a:b] = value`, refusing growth past the size limits."""
    guarded_write(target)
    if not isinstance(value, (list, tuple, str, bytes, bytearray, range)):
        value = bounded_list(value, "a slice assignment")
    check_size(len(target) + len(value), limit_of(target), "a slice assignment")
    target[piece] = value


def _refuse_format(obj: Any, name: str) -> None:
    owner = real_type(obj)
    if isinstance(owner, super):
        # `super().format` is `str.format` bound to the instance (or class) the proxy is bound to:
        # judge that, not the proxy. An unbound proxy (`super(C)`) has no owner: refuse outright.
        owner = owner.__self__  # type: ignore[attr-defined]  # typeshed does not declare super's __self__
        if owner is None:
            raise AttributeError(f"{name} is not available through an unbound super() in plugins")
    is_str = isinstance(owner, str) or isinstance(owner, type) and issubclass(owner, str)
    if name in ("format", "format_map") and is_str:
        raise AttributeError(f"str.{name} is not available to plugins (it can read attributes); use an f-string")
    formatter = isinstance(owner, string.Formatter) or isinstance(owner, type) and issubclass(owner, string.Formatter)
    if formatter and name in ("format", "vformat", "get_field", "get_value"):
        raise AttributeError("string.Formatter is not available to plugins")
    if name == "obj" and isinstance(owner, BaseException):
        raise AttributeError("AttributeError.obj is not available to plugins")


def _base_count(value: Any, sub: Any) -> int:
    """`value.count(sub)` by the builtin text type's method: size checks never call a subclass's.

    A plugin's `class S(str)` may define `count()`; a guard that asked `value.count` would trust
    whatever the plugin answers (isinstance-based type confusion).
    """
    if isinstance(value, str):
        return str.count(value, sub)
    if isinstance(value, bytes):
        return bytes.count(value, sub)
    if isinstance(value, bytearray):
        return bytearray.count(value, sub)
    raise TypeError("a str, bytes or bytearray is needed")


def _padding(width_index: int, keyword: str) -> Callable[..., Any]:
    def guard(
        self: Any,
        method: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        width = args[width_index] if len(args) > width_index else kwargs.get(keyword, 0)
        if isinstance(width, int):
            check_size(width, MAX_CHARS, "a padded string")
        return method(*args, **kwargs)

    return guard


def _guard_expandtabs(self: Any, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    size = args[0] if args else kwargs.get("tabsize", 8)
    tab = "\t" if isinstance(self, str) else b"\t"
    tabs = _base_count(self, tab)
    check_size(len(self) + tabs * max(size, 0), MAX_CHARS, "expandtabs()")
    return method(*args, **kwargs)


def _guard_replace(self: Any, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if len(args) >= 2 and isinstance(args[0], (str, bytes, bytearray)) and isinstance(args[1], (str, bytes, bytearray)):
        old, new = args[0], args[1]
        hits = _base_count(self, old) if old else len(self) + 1
        if len(args) > 2 and isinstance(args[2], int) and args[2] >= 0:
            hits = min(hits, args[2])
        check_size(len(self) + hits * max(len(new) - len(old), 0), MAX_CHARS, "replace()")
    return method(*args, **kwargs)


def _guard_join(self: Any, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    parts = bounded_list(args[0], "join()") if args else []
    total = sum(len(part) for part in parts if isinstance(part, (str, bytes, bytearray)))
    check_size(total + len(self) * max(len(parts) - 1, 0), MAX_CHARS, "join()")
    return method(parts)


def _guard_translate(self: Any, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    table = args[0] if args else kwargs.get("table")
    if isinstance(self, str):
        if not isinstance(table, dict):
            raise TypeError("str.translate takes a dict in plugins (see str.maketrans)")
        longest = max(
            (len(value) for value in dict.values(table) if isinstance(value, str)),
            default=1,
        )
        check_size(len(self) * max(longest, 1), MAX_CHARS, "translate()")
    return method(*args, **kwargs)


def _guard_to_bytes(self: Any, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    length = args[0] if args else kwargs.get("length", 1)
    if isinstance(length, int):
        check_size(length, MAX_CHARS, "int.to_bytes()")
    return method(*args, **kwargs)


def _guard_strftime(self: Any, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    template = args[0] if args else kwargs.get("format", "")
    if isinstance(template, str) and len(template) > MAX_FORMAT_SPEC:
        raise refuse(f"a strftime format of {len(template)} characters (limit {MAX_FORMAT_SPEC})")
    return method(*args, **kwargs)


def _guard_extend(self: Any, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    items = args[0] if args else ()
    if not isinstance(items, (list, tuple, str, bytes, bytearray, range, dict, set, frozenset)):
        items = bounded_list(items, "extend()")
    check_size(len(self) + len(items), limit_of(self), "extend()")
    return method(items)


def _guard_codec(self: Any, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`str.encode`/`bytes.decode`: C codecs only (`vm.sizes.check_codec`), results post-checked."""
    check_codec(args[0] if args else kwargs.get("encoding"))
    return _post_check(self, method, args, kwargs)


def _guard_decimal_int(self: Any, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    check_decimal(self, "Decimal.as_integer_ratio()")
    return method(*args, **kwargs)


def _post_check(self: Any, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = method(*args, **kwargs)
    if isinstance(result, list):
        check_size(len(result), MAX_ITEMS, "a split")
        return result
    return checked(result, "a string method")


def _guard_elements(self: Any, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return ticking(method(*args, **kwargs))


_TEXT = (str, bytes, bytearray)
_DATES = (datetime.date, datetime.time)
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
    "encode": ((str,), _guard_codec),
    "decode": ((bytes, bytearray), _guard_codec),
    "hex": ((bytes, bytearray), _post_check),
    "split": (_TEXT, _post_check),
    "rsplit": (_TEXT, _post_check),
    "splitlines": (_TEXT, _post_check),
    "to_bytes": ((int,), _guard_to_bytes),
    "strftime": (_DATES, _guard_strftime),
    "extend": ((list, bytearray, collections.deque), _guard_extend),
    "extendleft": ((collections.deque,), _guard_extend),
    "elements": ((collections.Counter,), _guard_elements),
    "as_integer_ratio": ((decimal.Decimal,), _guard_decimal_int),
}


def _guard_from_bytes(cls: type, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`int.from_bytes`: an int of at most MAX_INT_BITS (`math.gcd` of two 40-million-bit ints
    built from random bytes runs for hours in C)."""
    data = args[0] if args else kwargs.pop("bytes", b"")
    if not isinstance(data, (bytes, bytearray)):
        data = bytes(bounded_list(data, "int.from_bytes()"))
    if len(data) * 8 > MAX_INT_BITS:
        raise refuse(f"int.from_bytes() of {len(data)} bytes (limit {MAX_INT_BITS // 8})")
    return method(data, *args[1:], **kwargs)


def _guard_fromkeys(cls: type, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`dict.fromkeys`: at most MAX_ITEMS keys, as every other constructor."""
    if not args:
        return method(**kwargs)  # its own TypeError
    return method(bounded_list(args[0], "dict.fromkeys()"), *args[1:], **kwargs)


# class methods: attribute name -> (owner types, guard(class, bound method, args, kwargs)); the same
# whether taken from the class, a subclass or an instance (a class method binds to the class)
_CLASS_METHOD_GUARDS: dict[str, tuple[tuple[type, ...], Callable[..., Any]]] = {
    "from_bytes": ((int,), _guard_from_bytes),
    "fromkeys": ((dict,), _guard_fromkeys),
}
_SPECIAL_NAMES = (
    frozenset(_METHOD_GUARDS)
    | frozenset(_CLASS_METHOD_GUARDS)
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
    class_entry = _CLASS_METHOD_GUARDS.get(name)
    if class_entry is not None:
        return _class_method(obj, name, class_entry)
    entry = _METHOD_GUARDS.get(name)
    if entry is None:
        return getattr(obj, name)
    owners, guard = entry
    if isinstance(obj, super):  # a plugin may subclass super too
        raise AttributeError(f"{name} is not available through super() in plugins")  # noqa: TRY004 - as a missing attribute
    real = real_type(obj)
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


def _class_method(obj: Any, name: str, entry: tuple[tuple[type, ...], Callable[..., Any]]) -> Any:
    owners, guard = entry
    if isinstance(obj, super):  # a plugin may subclass super too
        raise AttributeError(f"{name} is not available through super() in plugins")  # noqa: TRY004 - as a missing attribute
    real = real_type(obj)
    cls = real if isinstance(real, type) else type(real)
    if not issubclass(cls, owners):
        return getattr(obj, name)
    method = getattr(real, name)
    return lambda *args, **kwargs: guard(cls, method, args, kwargs)


def guarded_inplace(op: str, target: Any, value: Any) -> Any:
    """`_inplacevar_` for `x op= y` on names: the same guards as the binary operators."""
    if op == "+=":
        if isinstance(target, (list, bytearray, collections.deque)):
            _guard_extend(target, lambda items: None, (value,), {})
            target += value
            return target
        return guarded_add(target, value)
    if op == "*=":
        return guarded_mul(target, value)
    if op == "**=":
        return guarded_pow(target, value)
    if op == "<<=":
        return guarded_lshift(target, value)
    if op == "%=":
        return guarded_mod(target, value)
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
