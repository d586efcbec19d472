"""The data that travels through the pipeline: small frozen dataclasses, replaced, never mutated."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from plugin_server.storage.teams import Team


@dataclass(frozen=True, slots=True)
class Source:
    """Where a message came from in Kafka, for offsets, dedup tokens and the dead letter queue."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class PersonView:
    """The person of an event, as of that event (for the event row's person columns)."""

    uuid: str
    properties: dict[str, Any]
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class GroupView:
    """A group an event names, as of that event (for the event row's group columns)."""

    index: int  # group type index, 0..4
    key: str
    properties: dict[str, Any]
    created_at: dt.datetime | None  # None: the group is not known (PostHog writes epoch 0)


@dataclass(frozen=True, slots=True)
class IngestionWarning:
    type: str
    details: dict[str, Any]


@dataclass(frozen=True)
class PipelineEvent:
    """One capture event: the envelope merged with its `data`, as PostHog's PipelineEvent.

    Not slotted, unlike the small records above: `evolve` runs several times per event, and one
    dict merge is several times cheaper than setting every slot (benchmarks/profile.py)."""

    source: Source
    raw: bytes
    uuid: str
    distinct_id: str
    event: str
    properties: dict[str, Any]
    now: str
    ip: str | None = None
    site_url: str | None = None
    token: str | None = None
    team_id: int | None = None
    sent_at: str | None = None
    timestamp: Any = None
    offset: Any = None
    elements_chain: str = ""
    team: Team | None = None
    resolved_timestamp: dt.datetime | None = None
    person: PersonView | None = None
    groups: tuple[GroupView, ...] = ()
    warnings: tuple[IngestionWarning, ...] = field(default=())

    @classmethod
    def parsed(cls, **fields: Any) -> PipelineEvent:
        """`PipelineEvent(**fields)` for the parse step, without the frozen __init__'s
        `object.__setattr__` per field (3.5 µs per event, the largest single cost of parsing)."""
        names = fields.keys()
        if not (_REQUIRED <= names <= _ALL):
            raise TypeError(f"PipelineEvent: missing {sorted(_REQUIRED - names)}, unknown {sorted(names - _ALL)}")
        new = object.__new__(cls)
        object.__setattr__(new, "__dict__", {**_DEFAULTS, **fields})
        return new

    def evolve(self, **changes: Any) -> PipelineEvent:
        """A copy with `changes` (dataclasses.replace, without its per-call introspection)."""
        new = object.__new__(PipelineEvent)
        object.__setattr__(new, "__dict__", {**self.__dict__, **changes})
        return new

    def resolved(self) -> tuple[int, dt.datetime]:
        """`(team_id, resolved_timestamp)`, which resolve_team and normalize set: the steps after
        them (persons, groups) rely on both."""
        assert self.team_id is not None and self.resolved_timestamp is not None, "resolve_team and normalize ran"
        return self.team_id, self.resolved_timestamp

    @property
    def grouping_key(self) -> str:
        """Events with one key run in order; PostHog's `<team_id or token>:<distinct_id>`."""
        return f"{self.team_id if self.team_id is not None else self.token}:{self.distinct_id}"


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(PipelineEvent) if f.default is not dataclasses.MISSING}
_ALL = frozenset(f.name for f in dataclasses.fields(PipelineEvent))
_REQUIRED = _ALL - _DEFAULTS.keys()
