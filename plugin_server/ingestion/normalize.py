"""Step 3: normalize an event with its team known: initial/last person properties, timestamp,
`$ip`, `$sent_at`.

Pure; the wall clock is an argument. Persons, groups and the full property rules of
REFERENCE.md 2.3-2.5 are later steps.
"""

from __future__ import annotations

import datetime as dt

from plugin_server.ingestion.event import PipelineEvent
from plugin_server.ingestion.person_rules import initial_and_last_properties
from plugin_server.ingestion.results import Ok
from plugin_server.ingestion.timestamps import resolve_timestamp


def normalize(event: PipelineEvent, wallclock: dt.datetime) -> Ok[PipelineEvent]:
    assert event.team is not None, "normalize runs after resolve_team"
    # PostHog's initial/last/UTM person properties (REFERENCE.md 2.5) join $set and $set_once.
    properties = dict(initial_and_last_properties(event.event, event.properties))
    if event.ip and not event.team.anonymize_ips and "$ip" not in properties:
        properties["$ip"] = event.ip
    elif event.team.anonymize_ips:
        properties.pop("$ip", None)
    if event.sent_at and isinstance(event.sent_at, str):
        properties["$sent_at"] = event.sent_at

    resolved, warnings = resolve_timestamp(
        timestamp=event.timestamp,
        sent_at=event.sent_at,
        offset=event.offset,
        now=event.now,
        properties=properties,
        wallclock=wallclock,
        event_uuid=event.uuid,
        event_name=event.event,
    )
    return Ok(event.evolve(properties=properties, resolved_timestamp=resolved, warnings=event.warnings + warnings))
