"""One plugin config's live instance: what the chain, the post-write hooks and the runtime share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plugin_server.core import jsonx
from plugin_server.plugins.logs import LogTarget, PluginLogs
from plugin_server.plugins.meta import Meta
from plugin_server.plugins.meta.outage import PluginCall
from plugin_server.storage.plugins import ConfigRow
from vm.errors import SandboxError
from vm.sandbox import PluginInstance


@dataclass(eq=False)
class LoadedConfig:
    """One plugin config's live instance in this process."""

    row: ConfigRow
    instance: PluginInstance
    meta: Meta
    target: LogTarget
    logs: PluginLogs
    timeout: float
    ready: bool = False  # setup_plugin succeeded (or there is none)
    disabled: bool = False
    consecutive_timeouts: int = 0
    setup_attempts: int = 0
    next_setup: float = 0.0
    # The validated config as the host reads it (export settings). Never `meta.config`: that is the
    # plugin's own copy, which it may change, and the host's str() of what a plugin put there runs
    # in the event loop (a self-similar list froze it).
    host_config: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.row.plugin_name} ({self.row.config_id})"

    def log(self, source: str, kind: str, message: str) -> None:
        self.logs.write(self.target, source, kind, message)

    def call(self, function: Any, payload: Any) -> Any:
        """`function(copy of payload, meta)` in the sandbox, in the calling (worker) thread. The
        plugin gets its own copy, so what it mutates before failing is never the host's value."""
        copy = jsonx.loads(jsonx.dumps(payload))
        return self.run(function, copy, self.meta)

    def run(self, function: Any, *args: Any) -> Any:
        """`function(*args)` in the sandbox, in the calling (worker) thread: every call into the
        plugin's functions goes through here. Raises what the sandbox raises (SandboxError), except
        when a meta call met a service outage: then that retryable error, however the plugin
        handled it (plugin_server/plugins/meta/outage.py)."""
        with PluginCall() as call:
            try:
                result = self.instance.call(function, *args, timeout=self.timeout, log=self.print_log)
            except SandboxError:
                call.raise_outage()
                raise
            call.raise_outage()
        return result

    def print_log(self, kind: str, text: str) -> None:
        """The sandbox's `log(kind, text)`: print output and its own notes."""
        self.log("CONSOLE" if kind == "log" else "SYSTEM", "LOG" if kind == "log" else "WARN", text)
