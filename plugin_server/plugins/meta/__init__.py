"""`meta`: what a plugin config's code can reach of the world (REFERENCE.md 6.9), in Python terms.

One module per capability, each taking only what it needs: `data` (config, attachments,
`global_`), `storage`, `cache`, `logger`, `metrics`, `fetch`, `jobs`, `utils` (cursor). `_bridge`
holds what they share (MetaError, key and value checks, the way back to trio), `outage` what a
service outage does to the call, and `Meta` here only assembles them. Everything reachable from a
`Meta` is reachable by the plugin, so:
- a capability is a host object plugin code never gets: `meta` holds its facade (`_facade`), whose
  only attributes are its public methods, and which keeps no reference to it; nothing reachable
  from `meta` leads to a store, a client, the runtime or another config. Every value handed out is
  plain data or a copy, and what plugins hand in is checked or copied before the host serializes
  it (`_bridge.plain`);
- keys are namespaced by plugin config: storage rows carry the config id, Redis keys start with
  `@plugin-config/<id>/`, attachments are the config's own; no config can name another's;
- failures reach the plugin as `MetaError` with a message only (an exception object carries what
  it references into plugin code); a backing service's outage fails the plugin call instead, in a
  way plugin code cannot swallow (`outage`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plugin_server.plugins.meta import _facade
from plugin_server.plugins.meta._bridge import MetaError
from plugin_server.plugins.meta.cache import Cache
from plugin_server.plugins.meta.data import plugin_attachments, plugin_config
from plugin_server.plugins.meta.fetch import Fetch
from plugin_server.plugins.meta.jobs import Jobs
from plugin_server.plugins.meta.logger import Logger
from plugin_server.plugins.meta.metrics import Metrics
from plugin_server.plugins.meta.storage import Storage
from plugin_server.plugins.meta.utils import Utils
from plugin_server.storage.plugins import Attachment

__all__ = ["Meta", "MetaError"]


class Meta:
    """The `meta` argument of every plugin function, one per plugin config: plain data (config,
    attachments, `global_`) and the capabilities' facades. The capabilities are handed in (each
    built with only what it needs) and kept by the facades' table, not by `Meta`."""

    __slots__ = (
        "attachments",
        "cache",
        "config",
        "fetch",
        "global_",
        "jobs",
        "logger",
        "metrics",
        "storage",
        "utils",
    )

    def __init__(
        self,
        *,
        config: Mapping[str, Any],
        attachments: Mapping[str, Attachment],
        storage: Storage,
        cache: Cache | None,
        logger: Logger,
        metrics: Metrics,
        fetch: Fetch,
        jobs: Jobs,
        utils: Utils,
    ) -> None:
        self.config = plugin_config(config)
        self.attachments = plugin_attachments(attachments)
        self.global_: dict[str, Any] = {}
        self.storage = _facade.facade(storage)
        self.cache = _facade.facade(cache) if cache is not None else None
        self.logger = _facade.facade(logger)
        self.metrics = _facade.facade(metrics)
        self.fetch = _facade.facade(fetch)
        self.jobs = _facade.jobs_facade(jobs)
        self.utils = _facade.utils_facade(utils.cursor)
