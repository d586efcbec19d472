"""Step 1: turn a Kafka message from capture into a PipelineEvent (REFERENCE.md 1.1, 1.2).

The envelope's fields win over same-named fields inside `data` (PostHog's newer rule). Anything
we cannot make an event of is a DeadLetter with a reason from `Reason`.
"""

from __future__ import annotations

import json
import re
import uuid as uuid_lib
from typing import Any

from plugin_server.core import jsonx
from plugin_server.ingestion.event import PipelineEvent, Source
from plugin_server.ingestion.person_rules import extract_elements_chain, strip_nul
from plugin_server.ingestion.results import DeadLetter, Ok

MAX_DISTINCT_ID_LENGTH = 200
MAX_EVENT_NAME_LENGTH = 200
# Properties larger than this are refused: past it a row no longer fits Kafka's default message
# size (1 MB), and no analytics question needs one event to carry that much.
MAX_PROPERTIES_BYTES = 900_000
# A uuid already in its canonical text (what every SDK sends) is used as is: str(UUID(x)) == x.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class Reason:
    """Dead letter reasons of this step (also metric labels: keep them few and stable)."""

    EMPTY = "empty_message"
    NOT_JSON = "invalid_json"
    NOT_OBJECT = "not_an_object"
    BAD_DATA = "invalid_data"
    NO_TOKEN = "missing_token"
    BAD_TEAM_ID = "invalid_team_id"
    BAD_UUID = "invalid_uuid"
    NO_DISTINCT_ID = "invalid_distinct_id"
    NO_EVENT = "missing_event_name"
    BAD_PROPERTIES = "invalid_properties"
    TOO_LARGE = "properties_too_large"


_loads = jsonx.loads  # strict: NaN, Infinity and runaway nesting are refused


def sanitize_event_name(name: Any) -> str:
    """PostHog's sanitizeEventName: non-strings become their JSON text; at most 200 characters."""
    text: str
    if isinstance(name, str):
        text = name
    else:
        try:
            text = json.dumps(name, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError):
            text = str(name)
    return text[:MAX_EVENT_NAME_LENGTH]


def normalize_distinct_id(value: Any) -> str | None:
    """String form of a distinct_id, trimmed; None if it is missing, empty or too long."""
    if value is None or isinstance(value, dict | list | bool):
        return None
    text = (value if isinstance(value, str) else json.dumps(value)).replace("\x00", "").strip()
    if not text or len(text) > MAX_DISTINCT_ID_LENGTH:
        return None
    return text


def _canonical_uuid(value: Any) -> str | None:
    try:
        return str(uuid_lib.UUID(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def parse_message(value: bytes | None, source: Source) -> Ok[PipelineEvent] | DeadLetter:
    if not value:
        return DeadLetter(Reason.EMPTY, "message has no value")
    try:
        envelope = _loads(value)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return DeadLetter(Reason.NOT_JSON, f"message is not JSON: {exc}")
    if not isinstance(envelope, dict):
        return DeadLetter(Reason.NOT_OBJECT, f"message is JSON {type(envelope).__name__}, not an object")

    data_text = envelope.get("data")
    if isinstance(data_text, str):
        try:
            data = _loads(data_text)
        except (ValueError, RecursionError) as exc:
            return DeadLetter(Reason.BAD_DATA, f"data is not JSON: {exc}")
    elif data_text is None:
        data = {}
    else:
        return DeadLetter(Reason.BAD_DATA, f"data must be a JSON string, got {type(data_text).__name__}")
    if not isinstance(data, dict):
        return DeadLetter(Reason.BAD_DATA, f"data is JSON {type(data).__name__}, not an object")

    merged = {**data, **{k: v for k, v in envelope.items() if k != "data"}}

    token = merged.get("token")
    token = token.replace("\x00", "\ufffd") if isinstance(token, str) and token else None
    team_id = merged.get("team_id")
    if team_id is not None and (isinstance(team_id, bool) or not isinstance(team_id, int) or team_id < 1):
        return DeadLetter(Reason.BAD_TEAM_ID, f"team_id must be a positive integer, got {team_id!r}")
    if token is None and team_id is None:
        return DeadLetter(Reason.NO_TOKEN, "message has neither token nor team_id")

    raw_uuid = merged.get("uuid")
    event_uuid = (
        raw_uuid if isinstance(raw_uuid, str) and _CANONICAL_UUID.fullmatch(raw_uuid) else _canonical_uuid(raw_uuid)
    )
    if event_uuid is None:
        return DeadLetter(Reason.BAD_UUID, f"Not a valid UUID: {json.dumps(raw_uuid)[:100]}")

    distinct_id = normalize_distinct_id(merged.get("distinct_id"))
    if distinct_id is None:
        return DeadLetter(
            Reason.NO_DISTINCT_ID,
            f"distinct_id must be a non-empty string of at most {MAX_DISTINCT_ID_LENGTH} characters",
        )

    name = merged.get("event")
    if name is None or name == "":
        return DeadLetter(Reason.NO_EVENT, "event name is missing")

    properties = merged.get("properties")
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        return DeadLetter(Reason.BAD_PROPERTIES, f"properties must be an object, got {type(properties).__name__}")

    if not _merge_person_updates(properties, merged):
        return DeadLetter(Reason.BAD_PROPERTIES, "$set and $set_once must be objects")
    if len(value) > MAX_PROPERTIES_BYTES and (size := len(jsonx.dumps(properties))) > MAX_PROPERTIES_BYTES:
        return DeadLetter(Reason.TOO_LARGE, f"properties are {size} bytes, more than {MAX_PROPERTIES_BYTES}")
    if b"\\u0000" in value:  # NUL can only arrive escaped; Postgres and ClickHouse want none
        properties = strip_nul(properties)
    properties, elements_chain = extract_elements_chain(properties)
    if isinstance(top_chain := merged.get("elements_chain"), str) and top_chain:
        elements_chain = top_chain

    now = merged.get("now")
    return Ok(
        PipelineEvent.parsed(
            source=source,
            raw=value,
            uuid=event_uuid,
            distinct_id=distinct_id,
            event=sanitize_event_name(name),
            properties=properties,
            now=now if isinstance(now, str) else "",
            ip=merged.get("ip") or None,
            site_url=merged.get("site_url") or None,
            token=token,
            team_id=team_id,
            sent_at=merged.get("sent_at") or None,
            timestamp=merged.get("timestamp"),
            offset=merged.get("offset"),
            elements_chain=elements_chain,
        )
    )


def _merge_person_updates(properties: dict[str, Any], merged: dict[str, Any]) -> bool:
    """Top-level $set/$set_once merge into properties (top-level keys win). False if malformed."""
    for key in ("$set", "$set_once"):
        top = merged.get(key)
        if top is None:
            continue
        if not isinstance(top, dict):
            return False
        inner = properties.get(key)
        if inner is not None and not isinstance(inner, dict):
            return False
        properties[key] = {**(inner or {}), **top}
    return True
