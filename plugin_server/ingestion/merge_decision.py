"""What a merge event (`$identify`, `$create_alias`, `$merge_dangerously`) does to persons, as
PostHog decides it (REFERENCE.md 3.4-3.6): a pure function of plain values, carried out by the
persons step (plugin_server/ingestion/persons.py).

`other_id` and `into_id` are the ids `person_rules.merge_ids` names; `other` and `into` are the
persons those ids have now (None: no person yet). The decision is taken in two phases because
the step takes them at two moments: `screen_merge` needs only the ids and runs before any lock
is taken; `decide_merge` is the whole rule, taken again under the ids' locks on every attempt,
with the persons as they are then.
"""

from __future__ import annotations

from dataclasses import dataclass

from plugin_server.ingestion.event import IngestionWarning
from plugin_server.ingestion.person_rules import is_illegal_distinct_id

MERGE_DANGEROUSLY = "$merge_dangerously"


@dataclass(frozen=True, slots=True)
class Owner:
    """The person a distinct id belongs to, as the decision sees it."""

    person: str  # the person's uuid: two ids with the same one already share a person
    is_identified: bool


@dataclass(frozen=True, slots=True)
class Ignore:
    """Not a merge (both ids are the same): the event is an ordinary event of its distinct id,
    and nobody becomes identified."""


@dataclass(frozen=True, slots=True)
class Refuse:
    """No merge, and `warning` is sent.

    `to_into`: the event still goes to the person of `into_id`, which becomes identified (an
    identified `other` person that only `$merge_dangerously` may merge). Otherwise the event is
    an ordinary event of its own distinct id and nobody becomes identified (an illegal id)."""

    warning: IngestionWarning
    to_into: bool


@dataclass(frozen=True, slots=True)
class Create:
    """Neither id has a person: create one, identified, owning `distinct_ids` in that order."""

    distinct_ids: tuple[str, str]


@dataclass(frozen=True, slots=True)
class Link:
    """`distinct_id` has no person: add it to the person of `to`."""

    distinct_id: str
    to: str


@dataclass(frozen=True, slots=True)
class AlreadyLinked:
    """Both ids already share a person (another process, or an earlier attempt, linked them)."""


@dataclass(frozen=True, slots=True)
class Merge:
    """Merge the person of `other` into the person of `into`; `other`'s person is deleted."""

    other: str
    into: str


MergeDecision = Ignore | Refuse | Create | Link | AlreadyLinked | Merge


def screen_merge(other_id: str, into_id: str, *, event_uuid: str) -> Ignore | Refuse | None:
    """The part of the decision that needs only the ids; None: it depends on their persons."""
    if other_id == into_id:
        return Ignore()
    # PostHog checks the into id first, so when both are illegal the warning names that one.
    for illegal, legal in ((into_id, other_id), (other_id, into_id)):
        if is_illegal_distinct_id(illegal):
            details = {"illegalDistinctId": illegal, "otherDistinctId": legal, "eventUuid": event_uuid}
            return Refuse(IngestionWarning("cannot_merge_with_illegal_distinct_id", details), to_into=False)
    return None


def decide_merge(
    event: str, other_id: str, into_id: str, *, other: Owner | None, into: Owner | None, event_uuid: str
) -> MergeDecision:
    """What the merge event `event` does, given the persons `other_id` and `into_id` have.

    Only the `other` person's `is_identified` matters: an identified `into` person may absorb an
    anonymous one, and only `$merge_dangerously` merges an identified `other` person. Linking a
    new id to an identified person is never refused."""
    screened = screen_merge(other_id, into_id, event_uuid=event_uuid)
    if screened is not None:
        return screened
    if other is None and into is None:
        return Create((into_id, other_id))
    if into is None:
        return Link(into_id, to=other_id)
    if other is None:
        return Link(other_id, to=into_id)
    if other.person == into.person:
        return AlreadyLinked()
    if event == MERGE_DANGEROUSLY or not other.is_identified:
        return Merge(other=other_id, into=into_id)
    details = {"sourcePersonDistinctId": other_id, "targetPersonDistinctId": into_id, "eventUuid": event_uuid}
    return Refuse(IngestionWarning("cannot_merge_already_identified", details), to_into=True)
