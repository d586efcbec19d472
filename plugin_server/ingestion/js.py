"""JavaScript's rules for JSON values, where PostHog's TypeScript behaviour depends on them:
String(), truthiness, Number(), and how numbers print."""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

# StrWhiteSpaceChar: ECMAScript white space and line terminators (str.strip() differs slightly).
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff" + "".join(map(chr, range(0x2000, 0x200B)))
_JS_DECIMAL = re.compile(r"[+-]?(?:Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)", re.ASCII)
_JS_RADIX = {"0x": 16, "0o": 8, "0b": 2}


def js_number_string(value: float) -> str:
    """Number.prototype.toString(): shortest round-trip digits, exponent form outside 1e-7..1e21."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    _, digit_tuple, exponent = Decimal(repr(abs(value))).as_tuple()
    assert isinstance(exponent, int), "only NaN and infinities (handled above) have a letter exponent"
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    point = len(digit_tuple) + exponent  # value = 0.<digits> * 10**point
    k = len(digits)
    prefix = "-" if value < 0 else ""
    if k <= point <= 21:
        return prefix + digits + "0" * (point - k)
    if 0 < point <= 21:
        return prefix + digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return prefix + "0." + "0" * -point + digits
    e = point - 1
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{prefix}{mantissa}e{'+' if e > 0 else '-'}{abs(e)}"


def js_string(value: Any) -> str:
    """JavaScript's String(value) for a JSON value."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        try:
            return js_number_string(float(value))
        except OverflowError:  # an integer beyond any double: JS parsed it as Infinity
            return "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, list):  # Array.prototype.join: null and undefined become ""
        return ",".join("" if v is None else js_string(v) for v in value)
    return "[object Object]"


def js_truthy(value: Any) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return False
    return value is not None and value is not False and value != 0 and value != ""


def js_to_number(text: str) -> float:
    """ToNumber(string): "" and blanks are 0, hex/octal/binary literals, else NaN when not a number."""
    text = text.strip(_JS_SPACE)
    if not text:
        return 0.0
    radix = _JS_RADIX.get(text[:2].lower())
    if radix is not None:
        try:
            return float(int(text[2:], radix)) if text[2:].isascii() and text[2:].isalnum() else math.nan
        except ValueError:
            return math.nan
    if not _JS_DECIMAL.fullmatch(text):
        return math.nan
    return float(text.replace("Infinity", "inf"))
