"""A service outage met inside `meta` fails the plugin call that met it, whatever the plugin does.

When a capability meets a retryable failure of a backing service (Postgres, Redis down), the
event must not be ingested without the plugin's work: the batch is retried. Plugin code cannot be
trusted to let the failure through (`except:` and `except BaseException:` are allowed, as in
PostHog's plugins), so two things happen, neither of which plugin code can undo:

- the outage is recorded on the call in progress, a `PluginCall` that the host opens around every
  call into plugin code (`LoadedConfig.run`, plugin_server/plugins/loaded.py) and that only host
  code holds (a context variable of this module, not reachable from the sandbox). When the call
  ends, however it ends (a value, the plugin's own exception, a timeout), the host raises the
  recorded error (`PluginCall.raise_outage`): the chain and the hooks let it through, and the batch
  is retried;
- the plugin's code is stopped with the sandbox's own sticky abort (`vm.budget`, as for a
  deadline): a BaseException, raised again at every later tick of the call, so a plugin that
  catches it cannot go on for long, and every later meta call of the same call is refused at once
  (no writes, jobs or requests after the outage, which a retried batch would repeat).

The plugin sees a message only (`<capability>: <error>`), never the host's exception object.
"""

from __future__ import annotations

import contextvars
from typing import NoReturn, Self

from plugin_server.core.errors import PluginServerError
from vm import budget
from vm.errors import SandboxError


class PluginCall:
    """One call into plugin code as meta sees it: the first outage met during it, if any.

    `with PluginCall() as call:` around the call, in the thread that runs it (a class, not a
    generator context manager: it is entered once per plugin call, so per event and config)."""

    __slots__ = ("_token", "outage")

    def __init__(self) -> None:
        self.outage: PluginServerError | None = None
        self._token: contextvars.Token[PluginCall | None] | None = None

    def __enter__(self) -> Self:
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None

    def raise_outage(self) -> None:
        """Raise the recorded outage, if there is one (the host calls this when the call ended)."""
        if self.outage is not None:
            raise self.outage


_current: contextvars.ContextVar[PluginCall | None] = contextvars.ContextVar("plugin_call", default=None)


def fail_call(what: str, error: PluginServerError) -> None:
    """A capability met `error`, a retryable service failure: fail the call in progress with it
    (raises the abort). Returns only outside a plugin call (host code, a test): no call to fail."""
    call = _current.get()
    if call is None:
        return
    if call.outage is None:
        call.outage = error
    _abort(what, call.outage)


def refuse_after_outage(what: str) -> None:
    """Before a capability's I/O: a call that met an outage does nothing more through meta."""
    call = _current.get()
    if call is not None and call.outage is not None:
        _abort(what, call.outage)


def _abort(what: str, outage: PluginServerError) -> NoReturn:
    # Budget.expire raises the abort and makes every later tick of this call raise it again.
    budget.current().expire(SandboxError(f"{what}: {outage}"))
    raise AssertionError("unreachable: Budget.expire raises")  # pragma: no cover
