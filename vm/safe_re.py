"""The `re` module of plugins, backed by RE2: linear-time matching, so no pattern can hang a thread.

Python's `re` backtracks (a pathological pattern runs for hours in C, where no tick can stop it);
RE2 does not, and refuses backreferences and lookarounds instead (`re.error`). Patterns are bounded
in length and in the memory RE2 may use, and every result that could grow (`findall`, `split`,
`sub`, `Match.expand`) is size-checked and ticks per match. Only the flags IGNORECASE, MULTILINE
and DOTALL exist. `Match` and `Pattern` keep the RE2 objects in slots plugins cannot name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

import re2

from vm.budget import refuse, tick
from vm.sizes import MAX_CHARS, MAX_ITEMS, check_size, checked

MAX_PATTERN = 10_000  # characters of a regular expression
RE2_MAX_MEM = 2 << 20  # bytes RE2 may use per compiled pattern (default 8 MiB x 128 cached)


IGNORECASE = I = 2
MULTILINE = M = 8
DOTALL = S = 16
_FLAG_PREFIX = ((IGNORECASE, "i"), (MULTILINE, "m"), (DOTALL, "s"))
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.max_mem = RE2_MAX_MEM


class _Re2Match(Protocol):
    """What we use of an RE2 match (google-re2 ships no types); text is str or bytes."""

    @property
    def string(self) -> Any: ...
    @property
    def lastindex(self) -> int | None: ...
    @property
    def lastgroup(self) -> str | None: ...
    def group(self, *groups: int | str) -> Any: ...
    def __getitem__(self, group: int | str, /) -> Any: ...
    def groups(self, default: Any = ...) -> tuple[Any, ...]: ...
    def groupdict(self, default: Any = ...) -> dict[str, Any]: ...
    def start(self, group: int = ...) -> int: ...
    def end(self, group: int = ...) -> int: ...
    def span(self, group: int = ...) -> tuple[int, int]: ...
    def expand(self, template: Any, /) -> Any: ...


class _Re2Regexp(Protocol):
    """What we use of a compiled RE2 pattern (google-re2 ships no types)."""

    @property
    def pattern(self) -> Any: ...
    @property
    def groups(self) -> int: ...
    @property
    def groupindex(self) -> Mapping[str, int]: ...
    def search(self, text: Any, pos: int = ..., endpos: int | None = ..., /) -> _Re2Match | None: ...
    def match(self, text: Any, pos: int = ..., endpos: int | None = ..., /) -> _Re2Match | None: ...
    def fullmatch(self, text: Any, pos: int = ..., endpos: int | None = ..., /) -> _Re2Match | None: ...
    def finditer(self, text: Any, pos: int = ..., endpos: int | None = ..., /) -> Iterator[_Re2Match]: ...


def _re2_compile(pattern: str | bytes, flags: int) -> _Re2Regexp:
    """Compile with RE2: linear-time matching, so no pattern can hang a worker thread."""
    if not isinstance(pattern, (str, bytes)):
        raise TypeError("pattern must be a str or bytes")
    if len(pattern) > MAX_PATTERN:
        raise refuse(f"a regular expression of {len(pattern)} characters (limit {MAX_PATTERN})")
    if flags & ~(IGNORECASE | MULTILINE | DOTALL):
        raise ValueError("only the flags IGNORECASE, MULTILINE and DOTALL are supported")
    inline = "".join(letter for flag, letter in _FLAG_PREFIX if flags & flag)
    if inline:
        prefix = f"(?{inline})"
        pattern = prefix + pattern if isinstance(pattern, str) else prefix.encode() + pattern
    try:
        regexp: _Re2Regexp = re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        raise ReError(str(exc)) from None
    return regexp


class ReError(ValueError):
    """`re.error`: the pattern is invalid or uses a feature RE2 does not have (backreferences)."""


class Match:
    """A match, with `re.Match`'s reading methods; `expand` is bounded."""

    __slots__ = ("_match",)

    def __init__(self, match: _Re2Match) -> None:
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
        refs = template.count("\\") if isinstance(template, str) else template.count(b"\\")
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

    def search(self, string: Any, pos: int = 0, endpos: int | None = None) -> Match | None:
        found = self._regexp.search(string, pos, endpos)
        return None if found is None else Match(found)

    def match(self, string: Any, pos: int = 0, endpos: int | None = None) -> Match | None:
        found = self._regexp.match(string, pos, endpos)
        return None if found is None else Match(found)

    def fullmatch(self, string: Any, pos: int = 0, endpos: int | None = None) -> Match | None:
        found = self._regexp.fullmatch(string, pos, endpos)
        return None if found is None else Match(found)

    def finditer(self, string: Any, pos: int = 0, endpos: int | None = None) -> Iterator[Match]:
        for found in self._regexp.finditer(string, pos, endpos):
            tick()
            yield Match(found)

    def _check_group_output(self, string: Any, what: str) -> None:
        """Groups copy text out of each match: at most (groups + 1) times the input."""
        check_size((self.groups + 1) * len(string), MAX_CHARS, what)

    def findall(self, string: Any, pos: int = 0, endpos: int | None = None) -> list[Any]:
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
                raise TypeError("the replacement must be of the same type as the string")
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


def re_members() -> dict[str, Any]:
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
    members["split"] = lambda pattern, string, maxsplit=0, flags=0: compile(pattern, flags).split(string, maxsplit)
    members["sub"] = lambda pattern, repl, string, count=0, flags=0: compile(pattern, flags).sub(repl, string, count)
    members["subn"] = lambda pattern, repl, string, count=0, flags=0: compile(pattern, flags).subn(repl, string, count)
    return members


def _re_function(method: str) -> Callable[..., Any]:
    """`re.search(pattern, string, flags)` and friends (a closure: a partial would expose `.func`)."""

    def call(pattern: Any, string: Any, flags: int = 0) -> Any:
        compiled = pattern if isinstance(pattern, Pattern) else Pattern(pattern, flags)
        return getattr(compiled, method)(string)

    call.__name__ = method
    return call
