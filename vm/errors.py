"""Errors of the plugin sandbox: what a plugin did wrong, said so the plugin's author can act on it.

Every message names the plugin's file and line and never shows host code: tracebacks keep only
the frames of the plugin's own files. None of these is retryable: the same code on the same input
fails the same way (the caller decides what a timeout means for the event).
"""

from __future__ import annotations

from dataclasses import dataclass

from plugin_server.core.errors import PluginServerError


@dataclass(frozen=True)
class Violation:
    """One compile-time refusal: where it is and why."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"


class SandboxError(PluginServerError):
    """Base class of the errors the sandbox raises about plugin code."""


class PolicyViolation(SandboxError):
    """The plugin's source breaks the sandbox policy; nothing of it ran.

    Carries every violation found in every file (an author fixes them all at once); `file`,
    `line` and `message` are those of the first.
    """

    def __init__(self, violations: list[Violation] | tuple[Violation, ...]) -> None:
        if not violations:
            raise ValueError("a PolicyViolation needs at least one violation")
        self.violations = tuple(violations)
        first = self.violations[0]
        self.file, self.line, self.message = first.file, first.line, first.message
        super().__init__("\n".join(str(v) for v in self.violations))


class PluginCallError(SandboxError):
    """A call into plugin code failed. `file`/`line` locate the innermost plugin frame, if any."""

    def __init__(self, message: str, *, file: str | None, line: int | None, traceback: str = "") -> None:
        self.message = message
        self.file = file
        self.line = line
        self.traceback = traceback
        where = "" if file is None else (f"{file}:{line}: " if line is not None else f"{file}: ")
        super().__init__(f"{where}{message}")


class PluginTimeout(PluginCallError):
    """Plugin code ran past its deadline and was interrupted at a loop or function entry."""

    def __init__(
        self,
        timeout: float,
        *,
        file: str | None = None,
        line: int | None = None,
        traceback: str = "",
    ) -> None:
        self.timeout = timeout
        super().__init__(
            f"plugin code timed out after {timeout:g} seconds",
            file=file,
            line=line,
            traceback=traceback,
        )


class PluginResourceError(PluginCallError):
    """Plugin code tried to exceed a resource bound: memory, sizes, recursion depth, output."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        traceback: str = "",
    ) -> None:
        super().__init__(message, file=file, line=line, traceback=traceback)


class PluginRuntimeError(PluginCallError):
    """Plugin code raised, or returned something that may not leave the sandbox.

    `error_type` is the name of the plugin-side exception class (e.g. "KeyError"); `traceback`
    lists only the plugin's own frames, innermost last, as "file:line in function".
    """

    def __init__(
        self,
        message: str,
        *,
        error_type: str = "",
        file: str | None = None,
        line: int | None = None,
        traceback: str = "",
    ) -> None:
        self.error_type = error_type
        shown = f"{error_type}: {message}" if error_type else message
        super().__init__(shown, file=file, line=line, traceback=traceback)
