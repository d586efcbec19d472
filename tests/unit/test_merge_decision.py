"""What a merge event does to persons (REFERENCE.md 3.4-3.6): every event kind x which ids have
persons (neither, other, into, both: the same person or two) x their is_identified flags x
illegal ids, each with its outcome; then properties over arbitrary ids and persons."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin_server.ingestion.event import IngestionWarning
from plugin_server.ingestion.merge_decision import (
    AlreadyLinked,
    Create,
    Ignore,
    Link,
    Merge,
    MergeDecision,
    Owner,
    Refuse,
    decide_merge,
    screen_merge,
)
from plugin_server.ingestion.person_rules import is_illegal_distinct_id

EVENT_UUID = "0190a1b2-0000-7000-8000-000000000001"
KINDS = ("$identify", "$create_alias", "$merge_dangerously")
OTHER, INTO = "anon-1", "user@example.com"  # the alias / $anon_distinct_id, and the event's distinct_id

# Persons: A and B are two persons, anonymous or identified (_ID).
A, A_ID = Owner("person-a", is_identified=False), Owner("person-a", is_identified=True)
B, B_ID = Owner("person-b", is_identified=False), Owner("person-b", is_identified=True)

# (person of OTHER, person of INTO): every case of which ids have persons, with every flag.
PERSONS = {
    "neither": (None, None),
    "other only, anonymous": (A, None),
    "other only, identified": (A_ID, None),
    "into only, anonymous": (None, B),
    "into only, identified": (None, B_ID),
    "both, same person, anonymous": (A, A),
    "both, same person, identified": (A_ID, A_ID),
    "both, anonymous into anonymous": (A, B),
    "both, anonymous into identified": (A, B_ID),
    "both, identified into anonymous": (A_ID, B),
    "both, identified into identified": (A_ID, B_ID),
}

CREATE = Create((INTO, OTHER))  # in PostHog's order: the event's distinct id first
LINK_INTO = Link(INTO, to=OTHER)
LINK_OTHER = Link(OTHER, to=INTO)
MERGE = Merge(other=OTHER, into=INTO)
REFUSED = Refuse(
    IngestionWarning(
        "cannot_merge_already_identified",
        {"sourcePersonDistinctId": OTHER, "targetPersonDistinctId": INTO, "eventUuid": EVENT_UUID},
    ),
    to_into=True,
)

# --- legal ids, different: the persons decide ---

LEGAL = [
    ("$identify", "neither", CREATE),
    ("$identify", "other only, anonymous", LINK_INTO),
    ("$identify", "other only, identified", LINK_INTO),  # linking is never refused
    ("$identify", "into only, anonymous", LINK_OTHER),
    ("$identify", "into only, identified", LINK_OTHER),
    ("$identify", "both, same person, anonymous", AlreadyLinked()),
    ("$identify", "both, same person, identified", AlreadyLinked()),
    ("$identify", "both, anonymous into anonymous", MERGE),
    ("$identify", "both, anonymous into identified", MERGE),
    ("$identify", "both, identified into anonymous", REFUSED),
    ("$identify", "both, identified into identified", REFUSED),
    ("$create_alias", "neither", CREATE),
    ("$create_alias", "other only, anonymous", LINK_INTO),
    ("$create_alias", "other only, identified", LINK_INTO),
    ("$create_alias", "into only, anonymous", LINK_OTHER),
    ("$create_alias", "into only, identified", LINK_OTHER),
    ("$create_alias", "both, same person, anonymous", AlreadyLinked()),
    ("$create_alias", "both, same person, identified", AlreadyLinked()),
    ("$create_alias", "both, anonymous into anonymous", MERGE),
    ("$create_alias", "both, anonymous into identified", MERGE),
    ("$create_alias", "both, identified into anonymous", REFUSED),
    ("$create_alias", "both, identified into identified", REFUSED),
    ("$merge_dangerously", "neither", CREATE),
    ("$merge_dangerously", "other only, anonymous", LINK_INTO),
    ("$merge_dangerously", "other only, identified", LINK_INTO),
    ("$merge_dangerously", "into only, anonymous", LINK_OTHER),
    ("$merge_dangerously", "into only, identified", LINK_OTHER),
    ("$merge_dangerously", "both, same person, anonymous", AlreadyLinked()),
    ("$merge_dangerously", "both, same person, identified", AlreadyLinked()),
    ("$merge_dangerously", "both, anonymous into anonymous", MERGE),
    ("$merge_dangerously", "both, anonymous into identified", MERGE),
    ("$merge_dangerously", "both, identified into anonymous", MERGE),
    ("$merge_dangerously", "both, identified into identified", MERGE),
]


def test_the_legal_table_covers_every_kind_and_every_case() -> None:
    assert {(kind, case) for kind, case, _ in LEGAL} == {(k, c) for k in KINDS for c in PERSONS}
    assert len(LEGAL) == len(KINDS) * len(PERSONS)


@pytest.mark.parametrize(("kind", "case", "expected"), LEGAL)
def test_legal_ids(kind: str, case: str, expected: MergeDecision) -> None:
    other, into = PERSONS[case]
    assert decide_merge(kind, OTHER, INTO, other=other, into=into, event_uuid=EVENT_UUID) == expected


# --- an illegal id: refused before the persons matter, whatever they are ---

ILLEGAL = [
    # other id, into id, the warning's illegalDistinctId and otherDistinctId
    pytest.param(OTHER, "undefined", "undefined", OTHER, id="into illegal"),
    pytest.param("null", INTO, "null", INTO, id="other illegal"),
    # PostHog checks the into id first; the other id, illegal too, is named as the other one.
    pytest.param("guest", "0", "0", "guest", id="both illegal"),
    pytest.param("  ", INTO, "  ", INTO, id="other blank"),
    pytest.param("'Anonymous'", "[object Object]", "[object Object]", "'Anonymous'", id="quoted, case-sensitive"),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", PERSONS)
@pytest.mark.parametrize(("other_id", "into_id", "illegal", "legal"), ILLEGAL)
def test_illegal_ids(kind: str, case: str, other_id: str, into_id: str, illegal: str, legal: str) -> None:
    other, into = PERSONS[case]
    details = {"illegalDistinctId": illegal, "otherDistinctId": legal, "eventUuid": EVENT_UUID}
    expected = Refuse(IngestionWarning("cannot_merge_with_illegal_distinct_id", details), to_into=False)
    assert decide_merge(kind, other_id, into_id, other=other, into=into, event_uuid=EVENT_UUID) == expected


# --- the same id twice: not a merge, legal or not, no warning ---

SAME_ID_PERSONS = {
    "no person": (None, None),
    "anonymous person": (A, A),
    "identified person": (A_ID, A_ID),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", SAME_ID_PERSONS)
@pytest.mark.parametrize("distinct_id", [INTO, "null"])  # "null" is illegal: equal ids are checked first
def test_the_same_id_twice_is_ignored(kind: str, case: str, distinct_id: str) -> None:
    other, into = SAME_ID_PERSONS[case]
    decision = decide_merge(kind, distinct_id, distinct_id, other=other, into=into, event_uuid=EVENT_UUID)
    assert decision == Ignore()


# --- the ids alone: what the step decides before taking any lock ---


@pytest.mark.parametrize(
    ("other_id", "into_id", "expected"),
    [
        (OTHER, INTO, None),
        (INTO, INTO, Ignore()),
        ("null", "null", Ignore()),
        ("NULL", INTO, None),  # legal: only "null" is
        ("nan", INTO, None),
        ("00", INTO, None),
        ("anon-1", "NaN", Refuse(IngestionWarning("cannot_merge_with_illegal_distinct_id",
            {"illegalDistinctId": "NaN", "otherDistinctId": "anon-1", "eventUuid": EVENT_UUID}), to_into=False)),
        ("\u00a0", INTO, Refuse(IngestionWarning("cannot_merge_with_illegal_distinct_id",
            {"illegalDistinctId": "\u00a0", "otherDistinctId": INTO, "eventUuid": EVENT_UUID}), to_into=False)),
    ],
)  # fmt: skip
def test_screen_merge(other_id: str, into_id: str, expected: Ignore | Refuse | None) -> None:
    assert screen_merge(other_id, into_id, event_uuid=EVENT_UUID) == expected


# --- properties ---

IDS = st.sampled_from([OTHER, INTO, "anon-2", "null", "undefined", "0", "guest", "'email'", "", " ", "NULL"]) | st.text(
    max_size=6
)
OWNERS = st.none() | st.builds(Owner, st.sampled_from(["person-a", "person-b"]), st.booleans())
KIND = st.sampled_from([*KINDS, "$pageview"])


@settings(max_examples=500, deadline=None)
@given(kind=KIND, other_id=IDS, into_id=IDS, other=OWNERS, into=OWNERS)
def test_the_screen_is_the_decision_where_it_decides(
    kind: str, other_id: str, into_id: str, other: Owner | None, into: Owner | None
) -> None:
    """The step screens before taking locks and decides under them: both must agree, and the
    persons never turn an id-level outcome into another one."""
    screened = screen_merge(other_id, into_id, event_uuid=EVENT_UUID)
    decision = decide_merge(kind, other_id, into_id, other=other, into=into, event_uuid=EVENT_UUID)
    if screened is not None:
        assert decision == screened
    else:
        assert not isinstance(decision, Ignore)
        assert not (isinstance(decision, Refuse) and not decision.to_into)


@settings(max_examples=500, deadline=None)
@given(kind=KIND, other_id=IDS, into_id=IDS, other=OWNERS, into=OWNERS)
def test_outcomes_match_the_persons(
    kind: str, other_id: str, into_id: str, other: Owner | None, into: Owner | None
) -> None:
    """Each outcome only acts on what exists: it creates only when neither id has a person, links
    only a personless id to an id with a person, merges only two different persons (the other
    into the into one, never the reverse), and never writes an illegal id anywhere."""
    decision = decide_merge(kind, other_id, into_id, other=other, into=into, event_uuid=EVENT_UUID)
    owner = {other_id: other, into_id: into}
    writes = isinstance(decision, Create | Link | Merge)
    if writes:
        assert other_id != into_id
        assert not is_illegal_distinct_id(other_id) and not is_illegal_distinct_id(into_id)
    match decision:
        case Create():
            assert decision.distinct_ids == (into_id, other_id) and other is None and into is None
        case Link():
            assert {decision.distinct_id, decision.to} == {other_id, into_id}
            assert owner[decision.distinct_id] is None and owner[decision.to] is not None
        case Merge():
            assert (decision.other, decision.into) == (other_id, into_id)
            assert other is not None and into is not None and other.person != into.person
        case AlreadyLinked():
            assert other is not None and into is not None and other.person == into.person
        case Refuse(to_into=True):
            assert other is not None and into is not None and other.person != into.person
            assert other.is_identified and kind != "$merge_dangerously"


@settings(max_examples=300, deadline=None)
@given(kind=KIND, other=OWNERS, into=OWNERS)
def test_only_the_other_persons_flag_matters(kind: str, other: Owner | None, into: Owner | None) -> None:
    """An identified into person may absorb an anonymous one (REFERENCE.md 3.6)."""
    flipped = None if into is None else Owner(into.person, not into.is_identified)
    assert decide_merge(kind, OTHER, INTO, other=other, into=into, event_uuid=EVENT_UUID) == decide_merge(
        kind, OTHER, INTO, other=other, into=flipped, event_uuid=EVENT_UUID
    )


@settings(max_examples=300, deadline=None)
@given(other_id=IDS, into_id=IDS, other=OWNERS, into=OWNERS)
def test_only_merge_dangerously_merges_an_identified_person(
    other_id: str, into_id: str, other: Owner | None, into: Owner | None
) -> None:
    """`$identify`, `$create_alias` and any other event decide alike; `$merge_dangerously` differs
    exactly where they refuse an identified other person, and merges it instead."""
    decide = {
        kind: decide_merge(kind, other_id, into_id, other=other, into=into, event_uuid=EVENT_UUID)
        for kind in (*KINDS, "$pageview")
    }
    assert decide["$identify"] == decide["$create_alias"] == decide["$pageview"]
    if isinstance(decide["$identify"], Refuse) and decide["$identify"].to_into:
        assert decide["$merge_dangerously"] == Merge(other=other_id, into=into_id)
    else:
        assert decide["$merge_dangerously"] == decide["$identify"]
