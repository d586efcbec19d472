import dataclasses
import datetime as dt

import pytest

from plugin_server.ingestion.event import IngestionWarning, PipelineEvent, Source
from plugin_server.ingestion.normalize import normalize
from plugin_server.ingestion.results import Ok
from plugin_server.storage.teams import Team

UTC = dt.UTC
WALLCLOCK = dt.datetime(2021, 6, 1, tzinfo=UTC)
NOW = dt.datetime(2020, 1, 1, 12, 0, 5, 200_000, tzinfo=UTC)
PLAIN = Team(id=1, uuid="00000000-0000-4000-8000-000000000001", name="plain", api_token="a", anonymize_ips=False)
ANONYMOUS = dataclasses.replace(PLAIN, id=2, name="anon", api_token="b", anonymize_ips=True)


def event(*, team: Team = PLAIN, **changes) -> PipelineEvent:
    base = PipelineEvent(
        source=Source("t", 0, 0, 0),
        raw=b"{}",
        uuid="017f3a4e-4f3c-7d7e-9c6b-3a2b1c0d9e8f",
        distinct_id="d",
        event="$pageview",
        properties={"k": "v"},
        now="2020-01-01T12:00:05.200Z",
        token=team.api_token,
        team_id=team.id,
        team=team,
    )
    return dataclasses.replace(base, **changes)


def run(e: PipelineEvent) -> PipelineEvent:
    result = normalize(e, wallclock=WALLCLOCK)
    assert isinstance(result, Ok)
    return result.value


@pytest.mark.parametrize(
    ("team", "ip", "properties", "expected_ip"),
    [
        (PLAIN, "10.0.0.1", {}, "10.0.0.1"),
        (PLAIN, "10.0.0.1", {"$ip": "192.168.0.9"}, "192.168.0.9"),
        (PLAIN, None, {}, None),
        (PLAIN, "", {}, None),
        (PLAIN, None, {"$ip": "192.168.0.9"}, "192.168.0.9"),
        (ANONYMOUS, "10.0.0.1", {}, None),
        (ANONYMOUS, "10.0.0.1", {"$ip": "192.168.0.9"}, None),
        (ANONYMOUS, None, {"$ip": "192.168.0.9"}, None),
    ],
    ids=[
        "added", "client-ip-kept", "no-ip", "empty-ip", "client-ip-kept-without-ip", "anonymized-not-added",
        "anonymized-removed", "anonymized-removed-without-ip",
    ],
)  # fmt: skip
def test_ip(team, ip, properties, expected_ip):
    out = run(event(team=team, ip=ip, properties={"k": "v", **properties}))
    assert out.properties.get("$ip") == expected_ip
    assert ("$ip" in out.properties) == (expected_ip is not None)
    assert out.properties["k"] == "v"


@pytest.mark.parametrize(
    ("sent_at", "expected"),
    [
        ("2020-01-01T12:00:05.000Z", "2020-01-01T12:00:05.000Z"),
        ("not a date", "not a date"),
        (None, None),
        ("", None),
    ],
    ids=["iso", "invalid-still-copied", "none", "empty"],
)
def test_sent_at_is_copied_into_properties(sent_at, expected):
    out = run(event(sent_at=sent_at))
    assert out.properties.get("$sent_at") == expected
    assert ("$sent_at" in out.properties) == (expected is not None)


def test_sent_at_overrides_a_client_sent_at_property():
    out = run(event(sent_at="2020-01-01T12:00:05.000Z", properties={"$sent_at": "client"}))
    assert out.properties["$sent_at"] == "2020-01-01T12:00:05.000Z"


def test_input_event_and_its_properties_are_not_changed():
    properties = {"k": "v", "$ip": "1.2.3.4"}
    original = event(team=ANONYMOUS, ip="10.0.0.1", sent_at="2020-01-01T12:00:05Z", properties=properties)
    out = run(original)
    assert properties == {"k": "v", "$ip": "1.2.3.4"}
    assert original.properties is properties and original.resolved_timestamp is None
    assert out is not original and out.properties is not properties


@pytest.mark.parametrize(
    ("changes", "resolved"),
    [
        ({}, NOW),
        ({"offset": 6000}, NOW - dt.timedelta(seconds=6)),
        (
            {"timestamp": "2020-01-01T12:00:00.000Z", "sent_at": "2020-01-01T12:00:05.000Z"},
            dt.datetime(2020, 1, 1, 12, 0, 0, 200_000, tzinfo=UTC),
        ),
        ({"now": ""}, WALLCLOCK),
    ],
    ids=["now", "offset", "skew-corrected", "no-now-uses-wallclock"],
)
def test_resolves_the_timestamp(changes, resolved):
    out = run(event(**changes))
    assert out.resolved_timestamp == resolved
    assert out.warnings == ()


def test_ignore_sent_at_property_is_honoured():
    out = run(
        event(timestamp="2020-01-01T12:00:00Z", sent_at="2020-01-01T11:00:00Z", properties={"$ignore_sent_at": True})
    )
    assert out.resolved_timestamp == dt.datetime(2020, 1, 1, 12, tzinfo=UTC)


def test_warnings_are_appended_to_earlier_ones():
    earlier = IngestionWarning("earlier", {"a": 1})
    out = run(event(timestamp="notISO", warnings=(earlier,)))
    assert out.resolved_timestamp == WALLCLOCK
    assert [w.type for w in out.warnings] == ["earlier", "ignored_invalid_timestamp"]


def test_needs_a_team():
    with pytest.raises(AssertionError):
        normalize(dataclasses.replace(event(), team=None), wallclock=WALLCLOCK)
