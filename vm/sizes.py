"""Size guards: refuse an operation before it allocates more than a single operation may.

The policy (`vm.policy`) rewrites `*`, `**`, `<<`, `+`, `%` and f-strings into the guarded
helpers here, which check result sizes before computing (`'x' * 10**10`, `10**10**10`,
`s = s + s` in a loop). `str()`/`repr()`/`format()`/JSON of a structure is estimated first
(`estimate_size`), so shared references cannot expand exponentially. Every checked size is
charged to the call's budget, so many large allocations in a row trigger a memory check at once.
A refusal raises `Abort` carrying a `PluginResourceError`.

Work bounds: a single C call holds the GIL, so the deadline, the watchdog and the event loop
freeze with it. Calls whose work grows faster than their result's size are bounded by their
operands before they run: `int(s, base)`, `pow(a, b, m)`, `math.gcd`/`lcm`, ints, powers and
fixed-point formats of Decimals (`check_decimal`, `check_decimal_pow`), and codecs (`check_codec`: C codecs only; a pure-Python codec
meets no tick and runs on past the deadline).
"""

from __future__ import annotations

import codecs
import collections
import decimal
import functools
import itertools
import re
import sys
import types
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
# Work bounds of single C calls that hold the GIL (the deadline, the watchdog and the event loop
# freeze with them), each a few tenths of a second at most on one core:
MAX_INT_ARGS_BITS = 4 * MAX_INT_BITS  # all arguments of math.gcd/lcm (gcd of two 131072-bit ints: ~30 ms)
MAX_POW_MOD_WORK = 1 << 36  # bits(exponent) * bits(modulus)**2 of pow(a, b, m): RSA-4096, ~0.2 s
MAX_DECIMAL_DIGITS = 20_000  # digits before the point of a Decimal made an int (int, round, floor, %d)
MAX_DECIMAL_POW_DIGITS = 400  # of the base of a Decimal power: a fractional one costs ~cube (6 ms here)
MAX_CODEC_NAME = 64  # characters of an encoding name

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
        if isinstance(value, decimal.Decimal):
            _check_decimal_format(value, spec)
    if type(value) not in _PLAIN_SCALARS:
        estimate_size(value, MAX_CHARS, "the text of a value")
    return checked(format(value, spec), "format()")


# ---- numbers: single C calls whose work grows with their operands -----------------------------


def check_int_text(text: object, base: object, what: str = "int()") -> None:
    """Refuse `int(text, base)` of more than MAX_INT_BITS: CPython limits the digits of base 10
    only, and `int("f" * 10**7, 16)` is a 40-million-bit int that a division then works on for hours."""
    if isinstance(text, (str, bytes, bytearray)) and isinstance(base, int):
        per_digit = (int(base) - 1).bit_length() if base >= 2 else 4  # base 0: at most hex digits
        if len(text) * max(per_digit, 1) > MAX_INT_BITS:
            raise refuse(f"{what} of {len(text)} characters in base {int(base)} (limit {MAX_INT_BITS} bits)")


def check_int_bits(values: Iterable[object], limit: int, what: str) -> None:
    """Refuse int arguments of more than `limit` bits together (the base class's `bit_length`:
    a plugin's int subclass may define its own)."""
    total = sum(int.bit_length(value) for value in values if isinstance(value, int))
    if total > limit:
        raise refuse(f"{what} of ints of {total} bits together (limit {limit})")


def check_pow_mod(base: object, exponent: object, modulus: object) -> None:
    """`pow(a, b, m)` costs about bits(b) * bits(m)**2: refuse past MAX_POW_MOD_WORK."""
    if isinstance(exponent, int) and isinstance(modulus, int) and isinstance(base, int):
        work = int.bit_length(exponent) * int.bit_length(modulus) ** 2
        if work > MAX_POW_MOD_WORK or int.bit_length(base) > MAX_INT_ARGS_BITS:
            raise refuse(
                f"pow() with a {int.bit_length(exponent)}-bit exponent and a {int.bit_length(modulus)}-bit modulus"
            )


def check_decimal(value: object, what: str) -> None:
    """Refuse making an int of a Decimal with more than MAX_DECIMAL_DIGITS digits before the point
    (`round(Decimal("1e999999999"))` converts 10**9 digits in C). The base class's methods: a
    plugin's Decimal subclass may define its own `adjusted()`."""
    if (
        isinstance(value, decimal.Decimal)
        and decimal.Decimal.is_finite(value)
        and decimal.Decimal.adjusted(value) > MAX_DECIMAL_DIGITS
    ):
        raise refuse(f"{what} of a Decimal with more than {MAX_DECIMAL_DIGITS} digits")


def check_decimal_pow(base: object, exponent: object) -> None:
    """A fractional power of a Decimal costs about the cube of the base's digits (10000 digits:
    ~15 s in C), and an int base becomes a Decimal of all its digits: refuse long bases."""
    if isinstance(base, decimal.Decimal):
        digits = len(decimal.Decimal.__str__(base))  # the base class's: linear, and an upper bound
    elif isinstance(base, int) and isinstance(exponent, decimal.Decimal):
        digits = int.bit_length(base) * 3 // 10
    else:
        return
    if digits > MAX_DECIMAL_POW_DIGITS:
        raise refuse(f"a Decimal power of a base of {digits} digits (limit {MAX_DECIMAL_POW_DIGITS})")


def _check_decimal_format(value: decimal.Decimal, spec: str) -> None:
    """Fixed-point formats write every digit between the point and the exponent: `f"{d:f}"` of
    Decimal("1e-300000000") is 300 MB, written in C before any size check could see it."""
    fixed = spec[-1:] in ("f", "F", "%") and decimal.Decimal.is_finite(value)
    if fixed and abs(decimal.Decimal.adjusted(value)) > MAX_FORMAT_WIDTH:
        raise refuse(f"a fixed-point format of a Decimal with an exponent beyond {MAX_FORMAT_WIDTH}")


# ---- codecs: only C ones, whose work is linear in their input -----------------------------------

# The Unicode codecs of `_codecs` (C), by canonical name: their modules wrap the C functions in thin
# Python ones (utf-8's decode, utf-8-sig's BOM), linear in the input.
_UNICODE_CODECS = frozenset({
    "utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be", "utf-7",
    "ascii", "iso8859-1", "unicode-escape", "raw-unicode-escape",
})  # fmt: skip


def check_codec(encoding: object) -> None:
    """Refuse an encoding that is not a C codec: `punycode` and `idna` are pure Python (punycode is
    quadratic) and meet no tick, so their thread runs on past the deadline. None is the default."""
    if encoding is None:
        return
    if type(encoding) is not str:
        raise TypeError("an encoding is a str")
    if len(encoding) > MAX_CODEC_NAME or not _c_codec(encoding):
        raise LookupError(f"the codec {encoding[:MAX_CODEC_NAME]!r} is not available to plugins (C codecs only)")


@functools.lru_cache(maxsize=256)
def _c_codec(encoding: str) -> bool:
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        return True  # unknown: the call itself raises its LookupError
    if info.name in _UNICODE_CODECS:
        return True
    return _c_implemented(info.encode) and _c_implemented(info.decode)


def _c_implemented(function: object) -> bool:
    """A `_codecs` function or a CJK `MultibyteCodec` method (C), or a charmap codec's method: a
    Python method over the C `charmap_encode`/`charmap_decode` and a table of its module."""
    if isinstance(function, types.BuiltinFunctionType):
        return True
    owner = getattr(function, "__self__", None)
    module = sys.modules.get(type(owner).__module__) if owner is not None else None
    return module is not None and (hasattr(module, "decoding_table") or hasattr(module, "decoding_map"))


# ---- guarded operators (the policy rewrites *, **, <<, +, % into these) -----------------------


def guarded_mul(a: Any, b: Any) -> Any:
    """`a * b` refusing repetition past the size limits and int products past MAX_INT_BITS."""
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        if a.bit_length() + b.bit_length() > MAX_INT_BITS:
            raise refuse(f"an int product of more than {MAX_INT_BITS} bits")
    elif ta is float or tb is float:
        pass
    elif isinstance(a, int) and isinstance(b, int):
        # a plugin's int subclass: the base class's bit_length (the subclass may define its own)
        if int.bit_length(a) + int.bit_length(b) > MAX_INT_BITS:
            raise refuse(f"an int product of more than {MAX_INT_BITS} bits")
    elif isinstance(b, int) and isinstance(a, _SEQUENCE_TYPES):
        check_size(len(a) * b, limit_of(a), "a repetition")
    elif isinstance(a, int) and isinstance(b, _SEQUENCE_TYPES):
        check_size(len(b) * a, limit_of(b), "a repetition")
    return a * b


def guarded_pow(a: Any, b: Any, modulo: Any = None) -> Any:
    """`a ** b` / `pow()` refusing int results past MAX_INT_BITS (`10**10**10`), modular powers
    past MAX_POW_MOD_WORK and Decimal powers of long bases."""
    if modulo is not None:
        check_pow_mod(a, b, modulo)
        return pow(a, b, modulo)
    if type(a) is not int or type(b) is not int:
        check_decimal_pow(a, b)
    huge = isinstance(a, int) and isinstance(b, int) and b > 0 and (int.bit_length(a) - 1) * b > MAX_INT_BITS
    if huge and a not in (0, 1, -1):
        raise refuse(f"an int power of more than {MAX_INT_BITS} bits")
    return a**b


def guarded_lshift(a: Any, b: Any) -> Any:
    if isinstance(b, int) and isinstance(a, int) and a and int.bit_length(a) + b > MAX_INT_BITS:
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
        args = tuple(b) if isinstance(b, tuple) else (b,)  # % unpacks a tuple subclass too
        for arg in args:  # a dict argument is estimated whole: keys and values
            if (
                isinstance(arg, int)
                and abs(arg) > MAX_FORMAT_WIDTH
                and b"*" in (a if isinstance(a, bytes) else a.encode())
            ):
                raise refuse(f"a %-format width above {MAX_FORMAT_WIDTH}")
            if isinstance(arg, decimal.Decimal):
                check_decimal(arg, "%-formatting")  # %d makes an int of it
            elif isinstance(arg, dict):
                for value in dict.values(arg):
                    check_decimal(value, "%-formatting")
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
