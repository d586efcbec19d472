"""`meta.config`, `meta.attachments` and `meta.global_`: plain data, the plugin's own copies.

`meta.global_` is PostHog's `meta.global` (`global` is a Python keyword): an empty dict per
instance that the plugin fills (in `setup_plugin`, usually) and reads in later calls.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from plugin_server.storage.plugins import Attachment


def plugin_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config's values, copied (what the plugin changes is its own)."""
    copy: dict[str, Any] = json.loads(json.dumps(config))
    return copy


def plugin_attachments(attachments: Mapping[str, Attachment]) -> dict[str, dict[str, Any]]:
    """The config's own attachments as dicts: `{content_type, file_name, contents}` by key."""
    return {
        key: {"content_type": a.content_type, "file_name": a.file_name, "contents": a.contents}
        for key, a in attachments.items()
    }
