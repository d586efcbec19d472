"""Everything handed to plugin code: the per-call budget, size guards, and the allow-listed modules.

RestrictedPython restricts the language, not the environment: whatever is reachable from an
object handed in is reachable by the plugin. So plugins never receive a real module. Each
allow-listed module is a `ReadOnlyModule`: a frozen object whose attributes are exactly the
documented names below, so `json.codecs`, `random._os` or `datetime.sys` do not exist, and
`json.dumps = evil` (or `setattr`/`del`) raises instead of changing the host's or another plugin's
`json`. Functions that could allocate without bound or run for long in C are replaced by guarded
versions (see each module's builder).

The budget (`Budget`, `tick`, `enter`) is per call and per thread: plugin calls run in worker
threads and each thread has its own deadline, depth and output allowance. Limits raise `Abort`, a
BaseException, so a plugin's `except Exception:` cannot swallow them; a deadline or memory abort
is sticky (every later tick raises again), so a bare `except:` cannot either.

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
import itertools
import json
import math
import os
import random
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import re2

from vm.errors import PluginResourceError, PluginTimeout, SandboxError

# Bounds of one guarded operation. Events are at most ~1 MB, so a plugin never needs a string ten
# times that or a million-item collection; the numbers only have to stop a single C call from
# allocating gigabytes.
MAX_CHARS = 10_000_000  # characters of a str, bytes of a bytes/bytearray
MAX_ITEMS = 1_000_000  # items of a list/tuple/set/dict/range made in one operation
MAX_INT_BITS = (
    65_536  # an int result of *, **, << (hashes are 256 bits; 2**65536 is ~20k digits)
)
MAX_FORMAT_WIDTH = 100_000  # width/precision in a format spec or %-format
MAX_FORMAT_SPEC = 1_000  # characters of a format spec or strftime format
MAX_PATTERN = 10_000  # characters of a regular expression
RE2_MAX_MEM = (
    2 << 20
)  # bytes RE2 may use per compiled pattern (default 8 MiB x 128 cached)

TICK_INTERVAL = (
    128  # ticks between deadline checks: time.monotonic costs ~50 ns, a tick ~40 ns
)
RSS_CHECK_SECONDS = (
    0.005  # at most this often the memory watchdog reads /proc/self/statm
)
ALLOC_CHECK_CHARS = (
    32 << 20
)  # guarded allocations since the last memory check that force one


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

    def refill(self) -> None:
        """Every TICK_INTERVAL ticks: the deadline, and now and then the memory watchdog."""
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
            self.expire(
                PluginResourceError(
                    f"plugin call grew the process memory by {grown >> 20} MiB"
                )
            )


class _Outside(Budget):
    """The budget of a thread that is not running a sandbox call: plugin code may not run there."""

    def refill(self) -> None:
        self.ticks = 0
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


# ---- size checks -----------------------------------------------------------------------------

_TEXT_TYPES = (str, bytes, bytearray)
_SEQUENCE_TYPES = (str, bytes, bytearray, list, tuple, collections.deque)


def limit_of(value: object) -> int:
    return MAX_CHARS if isinstance(value, _TEXT_TYPES) else MAX_ITEMS


def check_size(size: int, limit: int, what: str) -> int:
    """Refuse a result of `size` units above `limit`; charge it to the call's budget."""
    if size > limit:
        unit = "characters" if limit == MAX_CHARS else "items"
        raise refuse(f"{what} would have {size} {unit} (limit {limit})")
    _local.budget.charge(size)
    return size


def checked(value: Any, what: str) -> Any:
    """Post-check the size of a result whose growth over its inputs is a small constant factor."""
    if isinstance(value, _SEQUENCE_TYPES) and len(value) > limit_of(value):
        raise refuse(
            f"{what} would have {len(value)} items or characters (limit {limit_of(value)})"
        )
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
        kind = type(item)
        if kind is str:
            size += len(item) + 2
        elif kind is int:
            size += item.bit_length() // 3 + 2
        elif isinstance(item, dict):
            size += 2 + 4 * len(item)
            nodes += len(item)
            if nodes > MAX_ITEMS:
                break
            stack.extend(item.keys())
            stack.extend(item.values())
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
            stack.extend(item.args)
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
        raise refuse(
            f"a format spec of {len(spec)} characters (limit {MAX_FORMAT_SPEC})"
        )
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


# ---- ticking iterators -----------------------------------------------------------------------


def ticking(iterable: Iterable[Any]) -> Iterator[Any]:
    """Yield from `iterable` with a tick per item, so C code draining it still meets the deadline."""
    for item in iterable:
        tick()
        yield item


def _ticking_factory(
    factory: Callable[..., Iterable[Any]],
) -> Callable[..., Iterator[Any]]:
    @functools.wraps(factory, assigned=("__name__", "__doc__"))
    def make(*args: Any, **kwargs: Any) -> Iterator[Any]:
        return ticking(factory(*args, **kwargs))

    return make


# ---- read-only modules -----------------------------------------------------------------------


class ReadOnlyModule:
    """A frozen namespace of allow-listed names standing in for a module.

    Built as a one-off class whose class attributes are the members, so a lookup costs what a
    normal attribute lookup costs; functions are stored as staticmethods so they do not bind.
    Instances refuse every write; the class itself is unreachable from plugin code (`__class__`
    and `type` are not available).
    """

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"module {self!r} is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"module {self!r} is read-only")

    def __getattr__(self, name: str) -> Any:
        # A fresh error: never one carrying the real module as `.obj` (CVE-2024-47532).
        raise AttributeError(
            f"module {type(self).__name__!r} has no attribute {name!r} available to plugins"
        )

    def __repr__(self) -> str:
        return f"<plugin module {type(self).__name__!r}>"

    def __dir__(self) -> list[str]:
        return sorted(type(self).members)  # type: ignore[attr-defined]


def read_only_module(name: str, members: dict[str, Any]) -> ReadOnlyModule:
    """A `ReadOnlyModule` named `name` with exactly `members`."""
    body: dict[str, Any] = {"__slots__": (), "members": frozenset(members)}
    for key, value in members.items():
        if key.startswith("_"):
            raise ValueError(
                f"{name}.{key}: plugins cannot reach names starting with '_'"
            )
        body[key] = (
            staticmethod(value)
            if callable(value) and not isinstance(value, type)
            else value
        )
    cls = type(name, (ReadOnlyModule,), body)
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
        if (
            isinstance(indent, int)
            and not 0 <= indent <= 16
            or isinstance(indent, str)
            and len(indent) > 16
        ):
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
        "pi e tau inf nan ceil floor trunc sqrt isqrt exp expm1 log log1p log2 log10 pow fabs fmod "
        "copysign modf frexp ldexp sin cos tan asin acos atan atan2 sinh cosh tanh asinh acosh atanh "
        "hypot dist degrees radians isclose isfinite isinf isnan gcd lcm fsum erf erfc gamma lgamma "
        "remainder nextafter ulp",
    )

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

    members.update(factorial=factorial, comb=comb, perm=perm, prod=prod)
    return members


def _datetime_members() -> dict[str, Any]:
    return pick(
        datetime, "date datetime time timedelta timezone tzinfo MINYEAR MAXYEAR"
    ) | {"UTC": datetime.UTC}


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

    def choices(
        population: Any, weights: Any = None, *, cum_weights: Any = None, k: int = 1
    ) -> list[Any]:
        check_size(k, MAX_ITEMS, "random.choices()")
        return rng.choices(population, weights, cum_weights=cum_weights, k=k)

    members.update(getrandbits=getrandbits, randbytes=randbytes, choices=choices)
    return members


def _urllib_parse_members() -> dict[str, Any]:
    members = pick(
        urllib.parse,
        "urlparse urlunparse urlsplit urlunsplit urljoin urldefrag parse_qs parse_qsl unquote unquote_plus "
        "unquote_to_bytes ParseResult SplitResult",
    )
    for name in ("quote", "quote_plus", "quote_from_bytes", "urlencode"):
        members[name] = _post_checked(
            getattr(urllib.parse, name), f"urllib.parse.{name}()"
        )
    return members


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
    members: dict[str, Any] = {
        name: _ticking_factory(getattr(itertools, name)) for name in names.split()
    }
    members["chain"].from_iterable = _ticking_factory(itertools.chain.from_iterable)

    def product(*iterables: Iterable[Any], repeat: int = 1) -> Iterator[Any]:
        pools = [bounded_list(it, "itertools.product()") for it in iterables]
        check_size(
            sum(len(pool) for pool in pools) * repeat, MAX_ITEMS, "itertools.product()"
        )
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
    members = pick(
        base64, "b64decode urlsafe_b64decode standard_b64decode b32decode b16decode"
    )
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


# ---- re, backed by RE2 -----------------------------------------------------------------------

IGNORECASE = I = 2
MULTILINE = M = 8
DOTALL = S = 16
_FLAG_PREFIX = ((IGNORECASE, "i"), (MULTILINE, "m"), (DOTALL, "s"))
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.max_mem = RE2_MAX_MEM


def _re2_compile(pattern: str | bytes, flags: int) -> Any:
    """Compile with RE2: linear-time matching, so no pattern can hang a worker thread."""
    if not isinstance(pattern, (str, bytes)):
        raise TypeError("pattern must be a str or bytes")
    if len(pattern) > MAX_PATTERN:
        raise refuse(
            f"a regular expression of {len(pattern)} characters (limit {MAX_PATTERN})"
        )
    if flags & ~(IGNORECASE | MULTILINE | DOTALL):
        raise ValueError(
            "only the flags IGNORECASE, MULTILINE and DOTALL are supported"
        )
    inline = "".join(letter for flag, letter in _FLAG_PREFIX if flags & flag)
    if inline:
        prefix = f"(?{inline})"
        pattern = (
            prefix + pattern if isinstance(pattern, str) else prefix.encode() + pattern
        )
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        raise ReError(str(exc)) from None


class ReError(ValueError):
    """`re.error`: the pattern is invalid or uses a feature RE2 does not have (backreferences)."""


class Match:
    """A match, with `re.Match`'s reading methods; `expand` is bounded."""

    __slots__ = ("_match",)

    def __init__(self, match: Any) -> None:
        self._match = match

    def group(self, *groups: int | str) -> Any:
        return self._match.group(*groups)

    def __getitem__(self, group: int | str) -> Any:
        return self._match[group]

    def groups(self, default: Any = None) -> tuple[Any, ...]:
        return self._match.groups(default)

    def groupdict(self, default: Any = None) -> dict[str, Any]:
        return self._match.groupdict(default)

    def start(self, group: int = 0) -> int:
        return self._match.start(group)

    def end(self, group: int = 0) -> int:
        return self._match.end(group)

    def span(self, group: int = 0) -> tuple[int, int]:
        return self._match.span(group)

    @property
    def string(self) -> Any:
        return self._match.string

    @property
    def lastindex(self) -> int | None:
        return self._match.lastindex

    @property
    def lastgroup(self) -> str | None:
        return self._match.lastgroup

    def expand(self, template: str | bytes) -> Any:
        span = self._match.end() - self._match.start()
        refs = template.count("\\" if isinstance(template, str) else b"\\")
        check_size(len(template) + refs * span, MAX_CHARS, "Match.expand()")
        return self._match.expand(template)

    def __repr__(self) -> str:
        return f"<Match span={self.span()!r}>"


class Pattern:
    """A compiled RE2 pattern with `re.Pattern`'s API; results that could grow are bounded."""

    __slots__ = ("_regexp", "flags")

    def __init__(self, pattern: str | bytes, flags: int = 0) -> None:
        self._regexp = _re2_compile(pattern, flags)
        self.flags = flags

    @property
    def pattern(self) -> Any:
        return self._regexp.pattern

    @property
    def groups(self) -> int:
        return self._regexp.groups

    @property
    def groupindex(self) -> dict[str, int]:
        return dict(self._regexp.groupindex)

    def search(
        self, string: Any, pos: int = 0, endpos: int | None = None
    ) -> Match | None:
        found = self._regexp.search(string, pos, endpos)
        return None if found is None else Match(found)

    def match(
        self, string: Any, pos: int = 0, endpos: int | None = None
    ) -> Match | None:
        found = self._regexp.match(string, pos, endpos)
        return None if found is None else Match(found)

    def fullmatch(
        self, string: Any, pos: int = 0, endpos: int | None = None
    ) -> Match | None:
        found = self._regexp.fullmatch(string, pos, endpos)
        return None if found is None else Match(found)

    def finditer(
        self, string: Any, pos: int = 0, endpos: int | None = None
    ) -> Iterator[Match]:
        for found in self._regexp.finditer(string, pos, endpos):
            tick()
            yield Match(found)

    def _check_group_output(self, string: Any, what: str) -> None:
        """Groups copy text out of each match: at most (groups + 1) times the input."""
        check_size((self.groups + 1) * len(string), MAX_CHARS, what)

    def findall(
        self, string: Any, pos: int = 0, endpos: int | None = None
    ) -> list[Any]:
        self._check_group_output(string, "re.findall()")
        items = []
        for found in self._regexp.finditer(string, pos, endpos):
            tick()
            if not self.groups:
                items.append(found.group())
            elif self.groups == 1:
                items.append(found.groups(default=string[:0])[0])
            else:
                items.append(found.groups(default=string[:0]))
            if len(items) > MAX_ITEMS:
                raise refuse(f"re.findall() found more than {MAX_ITEMS} matches")
        return items

    def split(self, string: Any, maxsplit: int = 0) -> list[Any]:
        self._check_group_output(string, "re.split()")
        pieces, end = [], 0
        for count, found in enumerate(self._regexp.finditer(string), start=1):
            tick()
            pieces.append(string[end : found.start()])
            pieces.extend(found[group] for group in range(1, self.groups + 1))
            end = found.end()
            if len(pieces) > MAX_ITEMS:
                raise refuse(f"re.split() would make more than {MAX_ITEMS} pieces")
            if count == maxsplit:
                break
        pieces.append(string[end:])
        return pieces

    def subn(self, repl: Any, string: Any, count: int = 0) -> tuple[Any, int]:
        pieces, end, total, done = [], 0, 0, 0
        for found in self._regexp.finditer(string):
            tick()
            piece = repl(Match(found)) if callable(repl) else Match(found).expand(repl)
            if not isinstance(piece, type(string)):
                raise TypeError(
                    "the replacement must be of the same type as the string"
                )
            pieces.append(string[end : found.start()])
            pieces.append(piece)
            end = found.end()
            total += len(pieces[-2]) + len(piece)
            check_size(total, MAX_CHARS, "re.sub()")
            done += 1
            if done == count:
                break
        pieces.append(string[end:])
        return string[:0].join(pieces), done

    def sub(self, repl: Any, string: Any, count: int = 0) -> Any:
        return self.subn(repl, string, count)[0]

    def __repr__(self) -> str:
        return f"re.compile({self.pattern!r})"


def _re_members() -> dict[str, Any]:
    def compile(pattern: str | bytes | Pattern, flags: int = 0) -> Pattern:
        return pattern if isinstance(pattern, Pattern) else Pattern(pattern, flags)

    def escape(pattern: str | bytes) -> Any:
        return checked(re2.escape(pattern), "re.escape()")

    members: dict[str, Any] = {
        "compile": compile,
        "escape": escape,
        "error": ReError,
        "Pattern": Pattern,
        "Match": Match,
        "IGNORECASE": IGNORECASE,
        "I": I,
        "MULTILINE": MULTILINE,
        "M": M,
        "DOTALL": DOTALL,
        "S": S,
    }
    for name in ("search", "match", "fullmatch", "finditer", "findall"):
        members[name] = _re_function(name)
    members["split"] = lambda pattern, string, maxsplit=0, flags=0: compile(
        pattern, flags
    ).split(string, maxsplit)
    members["sub"] = lambda pattern, repl, string, count=0, flags=0: compile(
        pattern, flags
    ).sub(repl, string, count)
    members["subn"] = lambda pattern, repl, string, count=0, flags=0: compile(
        pattern, flags
    ).subn(repl, string, count)
    return members


def _re_function(method: str) -> Callable[..., Any]:
    """`re.search(pattern, string, flags)` and friends (a closure: a partial would expose `.func`)."""

    def call(pattern: Any, string: Any, flags: int = 0) -> Any:
        compiled = pattern if isinstance(pattern, Pattern) else Pattern(pattern, flags)
        return getattr(compiled, method)(string)

    call.__name__ = method
    return call


# ---- the allow-list --------------------------------------------------------------------------

# Module name -> builder of its members. Shared modules are built once (they hold no state);
# `random` is built per plugin instance, since its generator has state a plugin may seed.
_SHARED_BUILDERS: dict[str, Callable[[], dict[str, Any]]] = {
    "json": _json_members,
    "re": _re_members,
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
PACKAGES = {
    "urllib": ("parse",)
}  # `import urllib.parse` binds `urllib`, so it needs a parent


@functools.cache
def shared_modules() -> dict[str, ReadOnlyModule]:
    """The stateless safe modules, built once per process."""
    modules = {
        name: read_only_module(name.rpartition(".")[2], build())
        for name, build in _SHARED_BUILDERS.items()
    }
    for package, children in PACKAGES.items():
        modules[package] = read_only_module(
            package, {child: modules[f"{package}.{child}"] for child in children}
        )
    return modules


def module_members(name: str) -> frozenset[str]:
    """The names a plugin may import from safe module `name` (for compile-time checks)."""
    if name == "random":
        return frozenset(_random_members(random.Random(0)))
    return type(shared_modules()[name]).members  # type: ignore[attr-defined, no-any-return]


def instance_modules() -> dict[str, ReadOnlyModule]:
    """The safe modules of one plugin instance: the shared ones plus its own `random`."""
    modules = dict(shared_modules())
    modules["random"] = read_only_module("random", _random_members(random.Random()))
    return modules


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
    huge = (
        type(a) is int
        and type(b) is int
        and b > 0
        and (a.bit_length() - 1) * b > MAX_INT_BITS
    )
    if huge and a not in (0, 1, -1):
        raise refuse(f"an int power of more than {MAX_INT_BITS} bits")
    return a**b


def guarded_lshift(a: Any, b: Any) -> Any:
    if (
        type(b) is int
        and isinstance(a, int)
        and a
        and a.bit_length() + b > MAX_INT_BITS
    ):
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
        for arg in args.values() if isinstance(b, dict) else args:
            if (
                type(arg) is int
                and abs(arg) > MAX_FORMAT_WIDTH
                and b"*" in (a if isinstance(a, bytes) else a.encode())
            ):
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
