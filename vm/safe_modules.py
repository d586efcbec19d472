"""The allow-listed modules plugins may import, as read-only wrappers of guarded members.

RestrictedPython restricts the language, not the environment: whatever is reachable from an
object handed in is reachable by the plugin. So plugins never receive a real module. Each
allow-listed module is a `ReadOnlyModule`: a frozen object whose attributes are exactly the
documented names below, so `json.codecs`, `random._os` or `datetime.sys` do not exist, and
`json.dumps = evil` (or `setattr`/`del`) raises instead of changing the host's or another plugin's
`json`. Functions that could allocate without bound or run for long in C are replaced by guarded
versions (see each module's builder; `re` is RE2-backed, in `vm.safe_re`).
`urllib.parse` is pure Python and meets no tick, so its functions take bounded texts and C
codecs only; `math.floor`/`ceil`/`trunc`/`gcd`/`lcm` bound the ints they make or work on.

Deliberately absent: `functools` except `reduce` and `cmp_to_key` (the issue names functools as
both an example of a safe module and as never to hand in: its `partial`, `singledispatch`,
`update_wrapper`/`wraps` and `lru_cache` carry or copy other objects' internals and `RLock`, and
`reduce`/`cmp_to_key` are the two pure helpers plugins actually use); `string` (its `Formatter`
resolves attribute paths: CVE-2024-47532, CVE-2026-76825); `time.sleep` (blocks a worker thread
where no tick can interrupt it); `random.SystemRandom`/`seed` of the shared generator (each plugin
instance gets its own `random.Random`); `decimal.getcontext`/`localcontext` (the context is
per thread and the threads are shared with the host); `uuid.uuid1`/`getnode` (host MAC address);
`hashlib.pbkdf2_hmac`/`scrypt`/`shake_*` (caller-chosen work or output size).
"""

from __future__ import annotations

import base64
import collections
import datetime
import decimal
import functools
import hashlib
import hmac
import inspect
import itertools
import json
import math
import random
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar

from vm.budget import refuse, ticking
from vm.safe_re import re_members
from vm.sizes import (
    MAX_CHARS,
    MAX_INT_ARGS_BITS,
    MAX_INT_BITS,
    MAX_ITEMS,
    bounded_list,
    check_codec,
    check_decimal,
    check_int_bits,
    check_size,
    checked,
    estimate_size,
    guarded_mul,
)


class ReadOnlyModule:
    """A frozen namespace of allow-listed names standing in for a module.

    Built as a one-off class whose class attributes are the members, so a lookup costs what a
    normal attribute lookup costs; functions are stored as staticmethods so they do not bind.
    Instances refuse every write; the class itself is unreachable from plugin code (`__class__`
    and `type` are not available).
    """

    __slots__ = ()
    members: ClassVar[frozenset[str]]  # set on each one-off class by read_only_module

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"module {self!r} is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"module {self!r} is read-only")

    def __getattr__(self, name: str) -> Any:
        # A fresh error: never one carrying the real module as `.obj` (CVE-2024-47532).
        raise AttributeError(f"module {type(self).__name__!r} has no attribute {name!r} available to plugins")

    def __repr__(self) -> str:
        return f"<plugin module {type(self).__name__!r}>"

    def __dir__(self) -> list[str]:
        return sorted(type(self).members)


def read_only_module(name: str, members: dict[str, Any]) -> ReadOnlyModule:
    """A `ReadOnlyModule` named `name` with exactly `members`."""
    body: dict[str, Any] = {"__slots__": (), "members": frozenset(members)}
    for key, value in members.items():
        if key.startswith("_"):
            raise ValueError(f"{name}.{key}: plugins cannot reach names starting with '_'")
        body[key] = staticmethod(value) if callable(value) and not isinstance(value, type) else value
    cls: type[ReadOnlyModule] = type(name, (ReadOnlyModule,), body)
    return cls()


def pick(module: Any, names: str) -> dict[str, Any]:
    """The named members of a real module (names separated by spaces)."""
    return {name: getattr(module, name) for name in names.split()}


def _json_members() -> dict[str, Any]:
    def dumps(
        obj: Any,
        *,
        indent: int | str | None = None,
        sort_keys: bool = False,
        ensure_ascii: bool = True,
        separators: tuple[str, str] | None = None,
        default: Callable[[Any], Any] | None = None,
        allow_nan: bool = True,
        skipkeys: bool = False,
    ) -> str:
        """json.dumps with a size estimate first (refuses DAG bombs) and a size check after."""
        if isinstance(indent, int) and not 0 <= indent <= 16 or isinstance(indent, str) and len(indent) > 16:
            raise ValueError("indent must be at most 16")
        if separators is not None and sum(len(s) for s in separators) > 16:
            raise ValueError("separators may be at most 16 characters")
        estimate_size(obj, MAX_CHARS // 2, "the JSON of a value")
        text = json.dumps(
            obj,
            indent=indent,
            sort_keys=sort_keys,
            ensure_ascii=ensure_ascii,
            separators=separators,
            default=default,
            allow_nan=allow_nan,
            skipkeys=skipkeys,
        )
        return checked(text, "json.dumps()")

    def loads(
        s: str | bytes,
        *,
        object_hook: Callable[..., Any] | None = None,
        parse_float: Callable[..., Any] | None = None,
        parse_int: Callable[..., Any] | None = None,
        parse_constant: Callable[..., Any] | None = None,
        object_pairs_hook: Callable[..., Any] | None = None,
    ) -> Any:
        return json.loads(
            s,
            object_hook=object_hook,
            parse_float=parse_float,
            parse_int=parse_int,
            parse_constant=parse_constant,
            object_pairs_hook=object_pairs_hook,
        )

    return {"dumps": dumps, "loads": loads, "JSONDecodeError": json.JSONDecodeError}


def _math_members() -> dict[str, Any]:
    members = pick(
        math,
        "pi e tau inf nan sqrt isqrt exp expm1 log log1p log2 log10 pow fabs fmod "
        "copysign modf frexp ldexp sin cos tan asin acos atan atan2 sinh cosh tanh asinh acosh atanh "
        "hypot dist degrees radians isclose isfinite isinf isnan fsum erf erfc gamma lgamma "
        "remainder nextafter ulp",
    )

    # Single C calls whose work grows with their operands: the ints of Decimals (`math.floor` of
    # Decimal("1e999999999") converts 10**9 digits) and gcd/lcm of huge ints.
    def floor(x: Any) -> Any:
        check_decimal(x, "math.floor()")
        return math.floor(x)

    def ceil(x: Any) -> Any:
        check_decimal(x, "math.ceil()")
        return math.ceil(x)

    def trunc(x: Any) -> Any:
        check_decimal(x, "math.trunc()")
        return math.trunc(x)

    def gcd(*integers: int) -> int:
        check_int_bits(integers, MAX_INT_ARGS_BITS, "math.gcd()")
        return math.gcd(*integers)

    def lcm(*integers: int) -> int:
        check_int_bits(integers, MAX_INT_ARGS_BITS, "math.lcm()")
        return math.lcm(*integers)

    def factorial(n: int) -> int:
        if n > 10_000:
            raise refuse(f"math.factorial({n}) is too large (limit 10000)")
        return math.factorial(n)

    def comb(n: int, k: int) -> int:
        if n > 10_000:
            raise refuse(f"math.comb with n={n} is too large (limit 10000)")
        return math.comb(n, k)

    def perm(n: int, k: int | None = None) -> int:
        if n > 10_000:
            raise refuse(f"math.perm with n={n} is too large (limit 10000)")
        return math.perm(n, k)

    def prod(iterable: Iterable[Any], *, start: Any = 1) -> Any:
        result = start
        for item in bounded_list(iterable, "math.prod()"):
            result = guarded_mul(result, item)
        return result

    members.update(
        factorial=factorial, comb=comb, perm=perm, prod=prod, floor=floor, ceil=ceil, trunc=trunc, gcd=gcd, lcm=lcm
    )
    return members


def _datetime_members() -> dict[str, Any]:
    return pick(datetime, "date datetime time timedelta timezone tzinfo MINYEAR MAXYEAR") | {"UTC": datetime.UTC}


def _hashlib_members() -> dict[str, Any]:
    members = pick(
        hashlib,
        "md5 sha1 sha224 sha256 sha384 sha512 sha3_224 sha3_256 sha3_384 sha3_512 blake2b blake2s",
    )

    def new(name: str, data: bytes = b"") -> Any:
        if name not in members:
            raise ValueError(f"unsupported hash type {name!r}")
        return members[name](data)

    members["new"] = new
    members["algorithms_available"] = frozenset(members) - {"new"}
    return members


def _hmac_members() -> dict[str, Any]:
    def new(key: bytes, msg: bytes | None = None, digestmod: str = "sha256") -> Any:
        if type(digestmod) is not str:
            raise TypeError("digestmod must be the name of a hash, e.g. 'sha256'")
        return hmac.new(key, msg, digestmod)

    def digest(key: bytes, msg: bytes, digest: str) -> bytes:
        if type(digest) is not str:
            raise TypeError("digest must be the name of a hash, e.g. 'sha256'")
        return hmac.digest(key, msg, digest)

    return {"new": new, "digest": digest, "compare_digest": hmac.compare_digest}


def _random_members(rng: random.Random) -> dict[str, Any]:
    members = {
        name: getattr(rng, name)
        for name in [
            "random",
            "uniform",
            "randint",
            "randrange",
            "choice",
            "shuffle",
            "sample",
            "gauss",
            "normalvariate",
            "triangular",
            "betavariate",
            "expovariate",
            "seed",
        ]
    }

    def getrandbits(k: int) -> int:
        if k > MAX_INT_BITS:
            raise refuse(f"random.getrandbits({k}) is too large (limit {MAX_INT_BITS})")
        return rng.getrandbits(k)

    def randbytes(n: int) -> bytes:
        check_size(n, MAX_CHARS, "random.randbytes()")
        return rng.randbytes(n)

    def choices(population: Any, weights: Any = None, *, cum_weights: Any = None, k: int = 1) -> list[Any]:
        check_size(k, MAX_ITEMS, "random.choices()")
        return rng.choices(population, weights, cum_weights=cum_weights, k=k)

    members.update(getrandbits=getrandbits, randbytes=randbytes, choices=choices)
    return members


# urllib.parse is pure Python and meets no tick: parse_qs of a 10 MB query string runs ~5 s past any
# deadline. An event is at most ~1 MB, so no URL or query a plugin parses is longer.
MAX_URL_CHARS = 1_000_000


def _urllib_parse_members() -> dict[str, Any]:
    members = {
        name: _url_bounded(getattr(urllib.parse, name), name)
        for name in ("urlparse", "urlunparse", "urlsplit", "urlunsplit", "urljoin", "urldefrag", "unquote_to_bytes")
    }
    members.update(pick(urllib.parse, "ParseResult SplitResult"))
    # These take an `encoding`: C codecs only (`vm.sizes.check_codec`), wherever it is passed.
    for name in ("parse_qs", "parse_qsl", "unquote", "unquote_plus"):
        members[name] = _url_bounded(_codec_checked(getattr(urllib.parse, name)), name)
    for name in ("quote", "quote_plus"):
        bounded = _url_bounded(_codec_checked(getattr(urllib.parse, name)), name)
        members[name] = _post_checked(bounded, f"urllib.parse.{name}()")
    members["quote_from_bytes"] = _post_checked(
        _url_bounded(urllib.parse.quote_from_bytes, "quote_from_bytes"), "urllib.parse.quote_from_bytes()"
    )
    urlencode = _codec_checked(urllib.parse.urlencode)

    def bounded_urlencode(query: Any, *args: Any, **kwargs: Any) -> Any:
        estimate_size(query, MAX_URL_CHARS, "the query of urllib.parse.urlencode()")
        return checked(urlencode(query, *args, **kwargs), "urllib.parse.urlencode()")

    members["urlencode"] = bounded_urlencode
    return members


def _url_bounded(function: Callable[..., Any], name: str) -> Callable[..., Any]:
    """Refuse text arguments of more than MAX_URL_CHARS together."""

    @functools.wraps(function, assigned=("__name__", "__doc__"))
    def call(*args: Any, **kwargs: Any) -> Any:
        size = sum(len(arg) for arg in (*args, *kwargs.values()) if isinstance(arg, (str, bytes, bytearray)))
        if size > MAX_URL_CHARS:
            raise refuse(f"urllib.parse.{name}() of {size} characters (limit {MAX_URL_CHARS})")
        return function(*args, **kwargs)

    return call


def _codec_checked(function: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a function with an `encoding` parameter: refuse an encoding that is not a C codec."""
    index = list(inspect.signature(function).parameters).index("encoding")

    @functools.wraps(function, assigned=("__name__", "__doc__"))
    def call(*args: Any, **kwargs: Any) -> Any:
        check_codec(args[index] if len(args) > index else kwargs.get("encoding"))
        return function(*args, **kwargs)

    return call


def _post_checked(function: Callable[..., Any], what: str) -> Callable[..., Any]:
    """Wrap a function whose result is at most a few times its input: refuse oversized results."""

    @functools.wraps(function, assigned=("__name__", "__doc__"))
    def call(*args: Any, **kwargs: Any) -> Any:
        return checked(function(*args, **kwargs), what)

    return call


def _collections_members() -> dict[str, Any]:
    return {
        "OrderedDict": collections.OrderedDict,
        "defaultdict": collections.defaultdict,
        "deque": collections.deque,
        "Counter": collections.Counter,
        "namedtuple": collections.namedtuple,
    }


def _itertools_members() -> dict[str, Any]:
    names = (
        "count cycle repeat accumulate chain compress dropwhile filterfalse groupby islice pairwise "
        "starmap takewhile zip_longest permutations combinations combinations_with_replacement"
    )
    members: dict[str, Any] = {name: _ticking_factory(getattr(itertools, name)) for name in names.split()}
    members["chain"].from_iterable = _ticking_factory(itertools.chain.from_iterable)

    def product(*iterables: Iterable[Any], repeat: int = 1) -> Iterator[Any]:
        pools = [bounded_list(it, "itertools.product()") for it in iterables]
        check_size(sum(len(pool) for pool in pools) * repeat, MAX_ITEMS, "itertools.product()")
        return ticking(itertools.product(*pools, repeat=repeat))

    def tee(iterable: Iterable[Any], n: int = 2) -> tuple[Iterator[Any], ...]:
        check_size(n, 1_000, "itertools.tee()")
        return itertools.tee(ticking(iterable), n)

    members.update(product=product, tee=tee)
    return members


def _decimal_members() -> dict[str, Any]:
    return pick(
        decimal,
        "Decimal InvalidOperation DivisionByZero Overflow Underflow Inexact Rounded DecimalException "
        "ROUND_UP ROUND_DOWN ROUND_CEILING ROUND_FLOOR ROUND_HALF_UP ROUND_HALF_DOWN ROUND_HALF_EVEN ROUND_05UP",
    )


def _uuid_members() -> dict[str, Any]:
    return pick(
        uuid,
        "UUID uuid3 uuid4 uuid5 NAMESPACE_DNS NAMESPACE_URL NAMESPACE_OID NAMESPACE_X500",
    )


def _base64_members() -> dict[str, Any]:
    members = pick(base64, "b64decode urlsafe_b64decode standard_b64decode b32decode b16decode")
    for name in (
        "b64encode",
        "urlsafe_b64encode",
        "standard_b64encode",
        "b32encode",
        "b16encode",
    ):
        members[name] = _post_checked(getattr(base64, name), f"base64.{name}()")
    return members


def _time_members() -> dict[str, Any]:
    return {
        "time": time.time,
        "monotonic": time.monotonic,
        "perf_counter": time.perf_counter,
    }


def _functools_members() -> dict[str, Any]:
    return {"reduce": functools.reduce, "cmp_to_key": functools.cmp_to_key}


def _ticking_factory(
    factory: Callable[..., Iterable[Any]],
) -> Callable[..., Iterator[Any]]:
    @functools.wraps(factory, assigned=("__name__", "__doc__"))
    def make(*args: Any, **kwargs: Any) -> Iterator[Any]:
        return ticking(factory(*args, **kwargs))

    return make


# ---- the allow-list --------------------------------------------------------------------------

# Module name -> builder of its members. Shared modules are built once (they hold no state);
# `random` is built per plugin instance, since its generator has state a plugin may seed.
_SHARED_BUILDERS: dict[str, Callable[[], dict[str, Any]]] = {
    "json": _json_members,
    "re": re_members,
    "math": _math_members,
    "datetime": _datetime_members,
    "hashlib": _hashlib_members,
    "hmac": _hmac_members,
    "urllib.parse": _urllib_parse_members,
    "collections": _collections_members,
    "itertools": _itertools_members,
    "functools": _functools_members,
    "decimal": _decimal_members,
    "uuid": _uuid_members,
    "base64": _base64_members,
    "time": _time_members,
}
SAFE_MODULE_NAMES = frozenset(_SHARED_BUILDERS) | {"random"}
PACKAGES = {"urllib": ("parse",)}  # `import urllib.parse` binds `urllib`, so it needs a parent


@functools.cache
def shared_modules() -> dict[str, ReadOnlyModule]:
    """The stateless safe modules, built once per process."""
    modules = {name: read_only_module(name.rpartition(".")[2], build()) for name, build in _SHARED_BUILDERS.items()}
    for package, children in PACKAGES.items():
        modules[package] = read_only_module(package, {child: modules[f"{package}.{child}"] for child in children})
    return modules


def module_members(name: str) -> frozenset[str]:
    """The names a plugin may import from safe module `name` (for compile-time checks)."""
    if name == "random":
        return frozenset(_random_members(random.Random(0)))
    return type(shared_modules()[name]).members


def instance_modules() -> dict[str, ReadOnlyModule]:
    """The safe modules of one plugin instance: the shared ones plus its own `random`."""
    modules = dict(shared_modules())
    modules["random"] = read_only_module("random", _random_members(random.Random()))
    return modules
