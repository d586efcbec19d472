"""Size guards: refuse an operation before it allocates more than a single operation may.

The policy (`vm.policy`) rewrites `*`, `**`, `<<`, `+`, `%` and f-strings into the guarded
helpers here, which check result sizes before computing (`'x' * 10**10`, `10**10**10`,
`s = s + s` in a loop). `str()`/`repr()`/`format()`/JSON of a structure is estimated first
(`estimate_size`), so shared references cannot expand exponentially. Every checked size is
charged to the call's budget, so many large allocations in a row trigger a memory check at once.
A refusal raises `Abort` carrying a `PluginResourceError`.
"""

from __future__ import annotations

import collections
import itertools
import re
from collections.abc import Iterable
from typing import Any, TypeVar

from vm.budget import current, refuse

# Bounds of one guarded operation. Events are at most ~1 MB, so a plugin never needs a string ten
# times that or a million-item collection; the numbers only have to stop a single C call from
# allocating gigabytes.
MAX_CHARS = 10_000_000  # characters of a str, bytes of a bytes/bytearray
MAX_ITEMS = 1_000_000  # items of a list/tuple/set/dict/range made in one operation
MAX_INT_BITS = 65_536  # an int result of *, **, << (hashes are 256 bits; 2**65536 is ~20k digits)
MAX_FORMAT_WIDTH = 100_000  # width/precision in a format spec or %-format
MAX_FORMAT_SPEC = 1_000  # characters of a format spec or strftime format

T = TypeVar("T")

_TEXT_TYPES = (str, bytes, bytearray)
_SEQUENCE_TYPES = (str, bytes, bytearray, list, tuple, collections.deque)


def limit_of(value: object) -> int:
    return MAX_CHARS if isinstance(value, _TEXT_TYPES) else MAX_ITEMS


def check_size(size: int, limit: int, what: str) -> int:
    """Refuse a result of `size` units above `limit`; charge it to the call's budget."""
    if size > limit:
        unit = "characters" if limit == MAX_CHARS else "items"
        raise refuse(f"{what} would have {size} {unit} (limit {limit})")
    current().charge(size)
    return size


def checked(value: T, what: str) -> T:
    """Post-check the size of a result whose growth over its inputs is a small constant factor."""
    if isinstance(value, _SEQUENCE_TYPES) and len(value) > limit_of(value):
        raise refuse(f"{what} would have {len(value)} items or characters (limit {limit_of(value)})")
    return value


def bounded_list(iterable: Iterable[Any], what: str) -> list[Any]:
    """Materialize at most MAX_ITEMS items (C-level iteration may not grow without bound)."""
    if isinstance(
        iterable,
        (
            list,
            tuple,
            dict,
            set,
            frozenset,
            str,
            bytes,
            bytearray,
            range,
            collections.deque,
        ),
    ):
        check_size(
            len(iterable),
            MAX_ITEMS if not isinstance(iterable, _TEXT_TYPES) else MAX_CHARS,
            what,
        )
        return list(iterable)
    items = list(itertools.islice(iterable, MAX_ITEMS + 1))
    check_size(len(items), MAX_ITEMS, what)
    return items


def estimate_size(value: object, limit: int = MAX_CHARS, what: str = "value") -> int:
    """Roughly how long `str(value)`/JSON of `value` is, refusing past `limit` or MAX_ITEMS nodes.

    Iterative (no recursion), and shared references count each time they appear, so a
    self-similar structure (`a = [a, a]` thirty times) is refused before repr() or json.dumps()
    expands it to gigabytes.
    """
    stack = [value]
    size = nodes = 0
    while stack:
        item = stack.pop()
        nodes += 1
        # exact types, not isinstance: a plugin's str/int subclass may override __len__/bit_length
        if type(item) is str:
            size += len(item) + 2
        elif type(item) is int:
            size += item.bit_length() // 3 + 2
        elif isinstance(item, dict):
            size += 2 + 4 * len(item)
            nodes += len(item)
            if nodes > MAX_ITEMS:
                break
            # the base type's methods: a plugin's dict subclass may override keys()/values()
            stack.extend(dict.keys(item))
            stack.extend(dict.values(item))
        elif isinstance(item, (list, tuple, set, frozenset, collections.deque)):
            size += 2 + 2 * len(item)
            nodes += len(item)
            if nodes > MAX_ITEMS:
                break
            stack.extend(item)
        elif isinstance(item, (bytes, bytearray)):
            size += 4 * len(item) + 3
        elif isinstance(item, BaseException):
            size += 32
            # not a plugin's `args`: the base class's getset descriptor, which typeshed declares
            # as a plain tuple attribute
            stack.extend(BaseException.args.__get__(item))  # type: ignore[attr-defined]  # typeshed: args is a getset descriptor on the class
        else:
            size += 32
        if size > limit:
            break
    if nodes > MAX_ITEMS:
        raise refuse(f"{what} has more than {MAX_ITEMS} parts")
    if size > limit:
        raise refuse(f"{what} would be more than {limit} characters long")
    return size


_PLAIN_SCALARS = (str, int, float, bool, type(None))


def safe_str(value: object) -> str:
    """`str()` that refuses values whose text would be huge (shared or deep structures)."""
    if type(value) is str:
        return value
    if type(value) not in _PLAIN_SCALARS:
        estimate_size(value, MAX_CHARS, "the text of a value")
    return checked(str(value), "str()")


def safe_repr(value: object) -> str:
    if type(value) not in _PLAIN_SCALARS:
        estimate_size(value, MAX_CHARS, "the repr of a value")
    return checked(repr(value), "repr()")


def check_format_spec(spec: str) -> None:
    """Refuse a format spec that would pad or expand to a huge string (`{x:>10000000000}`)."""
    if len(spec) > MAX_FORMAT_SPEC:
        raise refuse(f"a format spec of {len(spec)} characters (limit {MAX_FORMAT_SPEC})")
    number = 0
    for char in spec:
        if "0" <= char <= "9":
            number = number * 10 + ord(char) - 48
            if number > MAX_FORMAT_WIDTH:
                raise refuse(f"a format width or precision above {MAX_FORMAT_WIDTH}")
        else:
            number = 0


def safe_format(value: object, spec: str = "") -> str:
    """The `format()` builtin and every f-string field: bounded width, bounded value text."""
    if type(spec) is not str:
        raise TypeError("format spec must be a str")
    if spec:
        check_format_spec(spec)
    if type(value) not in _PLAIN_SCALARS:
        estimate_size(value, MAX_CHARS, "the text of a value")
    return checked(format(value, spec), "format()")


# ---- guarded operators (the policy rewrites *, **, <<, +, % into these) -----------------------


def guarded_mul(a: Any, b: Any) -> Any:
    """`a * b` refusing repetition past the size limits and int products past MAX_INT_BITS."""
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        if a.bit_length() + b.bit_length() > MAX_INT_BITS:
            raise refuse(f"an int product of more than {MAX_INT_BITS} bits")
    elif ta is float or tb is float:
        pass
    elif isinstance(b, int) and isinstance(a, _SEQUENCE_TYPES):
        check_size(len(a) * b, limit_of(a), "a repetition")
    elif isinstance(a, int) and isinstance(b, _SEQUENCE_TYPES):
        check_size(len(b) * a, limit_of(b), "a repetition")
    return a * b


def guarded_pow(a: Any, b: Any, modulo: Any = None) -> Any:
    """`a ** b` / `pow()` refusing int results past MAX_INT_BITS (`10**10**10`)."""
    if modulo is not None:
        return pow(a, b, modulo)
    huge = type(a) is int and type(b) is int and b > 0 and (a.bit_length() - 1) * b > MAX_INT_BITS
    if huge and a not in (0, 1, -1):
        raise refuse(f"an int power of more than {MAX_INT_BITS} bits")
    return a**b


def guarded_lshift(a: Any, b: Any) -> Any:
    if type(b) is int and isinstance(a, int) and a and a.bit_length() + b > MAX_INT_BITS:
        raise refuse(f"an int shift to more than {MAX_INT_BITS} bits")
    return a << b


def guarded_add(a: Any, b: Any) -> Any:
    """`a + b`: concatenation may not pass the size limits (`s = s + s` doubles)."""
    kind = type(a)
    if kind is int or kind is float:
        return a + b
    if isinstance(a, _SEQUENCE_TYPES) and isinstance(b, _SEQUENCE_TYPES):
        check_size(len(a) + len(b), limit_of(a), "a concatenation")
    return a + b


def guarded_mod(a: Any, b: Any) -> Any:
    """`a % b`: for %-formatting, bounded widths and bounded argument text."""
    if isinstance(a, (str, bytes)):
        args = b if type(b) is tuple else (b,)
        for arg in args:  # a dict argument is estimated whole: keys and values
            if type(arg) is int and abs(arg) > MAX_FORMAT_WIDTH and b"*" in (a if isinstance(a, bytes) else a.encode()):
                raise refuse(f"a %-format width above {MAX_FORMAT_WIDTH}")
            if type(arg) not in _PLAIN_SCALARS:
                estimate_size(arg, MAX_CHARS, "a %-format argument")
        check_percent_format(a if isinstance(a, str) else a.decode("latin-1"))
        return checked(a % b, "%-formatting")
    return a % b


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\d*)(?:\.(\d*))?")


def check_percent_format(template: str) -> None:
    """Refuse `'%999999999d' % x`: widths and precisions of %-specs are bounded."""
    for width, precision in _PERCENT_SPEC.findall(template):
        for number in (width, precision):
            if number and (len(number) > 6 or int(number) > MAX_FORMAT_WIDTH):
                raise refuse(f"a %-format width or precision above {MAX_FORMAT_WIDTH}")
