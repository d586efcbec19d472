"""Synthetic capture messages, as PostHog's capture endpoint writes them to Kafka topic
``events_plugin_ingestion`` (REFERENCE.md 1.1, 1.6, 2.2, 3.4, 4.3).

Pure and deterministic: no I/O and no clock reads, so the same arguments give the same bytes.
Used by tests and benchmarks; ``garbage`` makes malformed values for dead-letter tests.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, fields
from itertools import accumulate
from typing import Any

SITE_URL = "http://localhost:8000"
LIB_VERSION = "1.57.2"
SPAN = dt.timedelta(hours=1)  # events are spread over the hour before `now`
MAX_SKEW_MS = 3 * 60 * 1000  # per-person client clock skew, either way
MAX_DELAY_MS = 3000  # from the event happening on the client to capture receiving it
OFFSET_SHARE = 0.2  # share of events sent with `offset` instead of `timestamp`

_HOST = "shop.example.com"
_PATHS = ("/", "/pricing", "/products", "/products/42", "/cart", "/checkout", "/blog/launch")
_CLIENTS = (  # ($browser, $browser_version, $os, $os_version, $device_type)
    ("Chrome", 120, "Mac OS X", "14.1.0", "Desktop"),
    ("Firefox", 121, "Linux", "", "Desktop"),
    ("Safari", 17, "iOS", "17.1.1", "Mobile"),
    ("Chrome", 120, "Android", "14.0.0", "Mobile"),
)
_PLANS = ("free", "starter", "growth", "enterprise")
_CUSTOM_EVENTS = ("signed_up", "added_to_cart", "purchase", "clicked_cta")
_SENT_AT_STYLES = ("iso", "", "absent")  # server-side and old SDKs send no usable sent_at


@dataclass(frozen=True, slots=True)
class Mix:
    """Relative weights of the kinds of event generated."""

    pageview: float = 70.0
    custom: float = 22.0
    identify: float = 3.0
    alias: float = 1.0
    set: float = 2.0
    groupidentify: float = 2.0

    def __post_init__(self) -> None:
        weights = [getattr(self, f.name) for f in fields(self)]
        if not all(w >= 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"Mix weights must be >= 0 with a positive sum, got {self}")


DEFAULT_MIX = Mix()
_KINDS = tuple(f.name for f in fields(Mix))


@dataclass(frozen=True, slots=True)
class SynthMessage:
    key: bytes  # b"<token>:<distinct_id>" as capture builds it
    value: bytes  # UTF-8 JSON of the capture envelope
    uuid: str
    event: str


@dataclass(slots=True)
class _Person:
    number: int
    user_id: str
    anon_id: str
    ip: str
    skew: dt.timedelta  # client clock minus server clock
    sent_at_style: str
    company: str
    static: dict[str, Any]  # SDK properties that stay the same from event to event
    seen: bool = False
    identified: bool = False

    @property
    def distinct_id(self) -> str:
        return self.user_id if self.identified else self.anon_id


def generate(
    *,
    token: str,
    events: int,
    persons: int = 100,
    seed: int = 0,
    now: dt.datetime,
    mix: Mix = DEFAULT_MIX,
) -> Iterator[SynthMessage]:
    """Yield `events` capture messages from `persons` people, received over the hour before `now`."""
    if not isinstance(token, str) or not token:
        raise ValueError(f"token must be a non-empty string, got {token!r}")
    if not isinstance(events, int) or events < 0:
        raise ValueError(f"events must be an int >= 0, got {events!r}")
    if not isinstance(persons, int) or persons < 1:
        raise ValueError(f"persons must be an int >= 1, got {persons!r}")
    if not isinstance(now, dt.datetime) or now.utcoffset() is None:
        raise ValueError(f"now must be a timezone-aware datetime, got {now!r}")
    # Validated eagerly here; the generator below only runs on first next().
    return _generate(token, events, persons, random.Random(seed), now.astimezone(dt.UTC), mix)


def _generate(
    token: str, events: int, persons: int, rng: random.Random, now: dt.datetime, mix: Mix
) -> Iterator[SynthMessage]:
    people = [_person(rng, n, companies=max(1, persons // 10)) for n in range(persons)]
    # Zipf-like activity: the person of rank r is picked with weight 1 / r**1.2.
    person_weights = list(accumulate(1 / (rank + 1) ** 1.2 for rank in range(persons)))
    kind_weights = list(accumulate(getattr(mix, kind) for kind in _KINDS))
    step = SPAN / max(events, 1)
    # Leave room for the receive delay so no capture time lies after `now`.
    start = now - SPAN - dt.timedelta(milliseconds=MAX_DELAY_MS)
    for i in range(events):
        person = rng.choices(people, cum_weights=person_weights)[0]
        kind = rng.choices(_KINDS, cum_weights=kind_weights)[0]
        yield _message(rng, token, person, kind, happened=start + step * i)


def _person(rng: random.Random, number: int, companies: int) -> _Person:
    browser, browser_version, os_name, os_version, device_type = rng.choice(_CLIENTS)
    company = f"company-{rng.randrange(companies)}"
    static = {
        "$os": os_name, "$os_version": os_version, "$browser": browser,
        "$browser_version": browser_version, "$device_type": device_type,
        "$host": _HOST, "$lib": "web", "$lib_version": LIB_VERSION,
        "$session_id": _uuid4(rng), "$window_id": _uuid4(rng), "$groups": {"company": company},
    }  # fmt: skip
    return _Person(
        number=number,
        user_id=f"user-{number}",
        anon_id=_uuid4(rng),
        ip=f"{rng.randint(11, 126)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randint(1, 254)}",
        skew=dt.timedelta(milliseconds=rng.randint(-MAX_SKEW_MS, MAX_SKEW_MS)),
        sent_at_style=rng.choices(_SENT_AT_STYLES, weights=(90, 5, 5))[0],
        company=company,
        static=static,
    )


def _message(rng: random.Random, token: str, person: _Person, kind: str, happened: dt.datetime) -> SynthMessage:
    event, extra, top_level = _event(rng, person, kind)
    person.seen = True
    distinct_id = person.distinct_id
    path = rng.choice(_PATHS)
    delay_ms = rng.randint(50, MAX_DELAY_MS)
    received = happened + dt.timedelta(milliseconds=delay_ms)
    properties = {
        **person.static,
        "$current_url": f"https://{_HOST}{path}",
        "$pathname": path,
        "distinct_id": distinct_id,
        "token": token,
        **extra,
    }
    data = {"event": event, "distinct_id": distinct_id, "properties": properties, **top_level}
    if rng.random() < OFFSET_SHARE:
        data["offset"] = delay_ms  # ms between the event and sending it, so now - offset = event
    else:
        data["timestamp"] = _js_iso(happened + person.skew)
    event_uuid = _uuid4(rng)
    envelope = {
        "uuid": event_uuid,
        "distinct_id": distinct_id,
        "ip": person.ip,
        "site_url": SITE_URL,
        "data": json.dumps(data),
        "now": received.isoformat(),
        "sent_at": _js_iso(received + person.skew) if person.sent_at_style == "iso" else "",
        "token": token,
    }
    if person.sent_at_style == "absent":
        del envelope["sent_at"]
    return SynthMessage(
        key=f"{token}:{distinct_id}".encode(),
        value=json.dumps(envelope).encode(),
        uuid=event_uuid,
        event=event,
    )


def _event(rng: random.Random, person: _Person, kind: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(event name, event-specific properties, top-level fields of `data`); may change `person`."""
    if kind == "identify" and not person.seen:
        kind = "pageview"  # an SDK has always captured something anonymously before identify
    elif kind == "identify" and person.identified:
        kind = "set"  # SDKs identify only once; later calls just set properties
    if kind == "identify":
        person.identified = True
        # posthog-js sends identify's $set at the top level of the event, not in properties.
        return "$identify", {"$anon_distinct_id": person.anon_id}, {"$set": _profile(person)}
    if kind == "alias":
        other = person.anon_id if person.identified else person.user_id
        return "$create_alias", {"alias": other}, {}
    if kind == "set":
        person_set = {**_profile(person), "plan": rng.choice(_PLANS)}
        return "$set", {"$set": person_set, "$set_once": {"first_plan": rng.choice(_PLANS)}}, {}
    if kind == "groupidentify":
        group_set = {"name": person.company.replace("-", " ").title(), "employees": rng.randint(1, 5000)}
        group = {"$group_type": "company", "$group_key": person.company, "$group_set": group_set}
        return "$groupidentify", group, {}
    if kind == "custom":
        return _custom_event(rng)
    return "$pageview", {}, {}


def _custom_event(rng: random.Random) -> tuple[str, dict[str, Any], dict[str, Any]]:
    name = rng.choice(_CUSTOM_EVENTS)
    plan = rng.choice(_PLANS)
    if name == "signed_up":
        return name, {"plan": plan}, {"$set_once": {"signup_plan": plan}}
    if name == "clicked_cta":
        return name, {"cta": rng.choice(("hero", "footer", "pricing"))}, {}
    items = rng.randint(1, 5)
    return name, {"plan": plan, "item_count": items, "amount": round(items * rng.uniform(5, 120), 2)}, {}


def _profile(person: _Person) -> dict[str, Any]:
    return {"email": f"user{person.number}@example.com", "name": f"User {person.number}"}


def _uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _js_iso(moment: dt.datetime) -> str:
    """A UTC datetime as JavaScript's toISOString() writes it: 2023-01-01T12:00:00.000Z."""
    return moment.isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"


GARBAGE_KINDS = (
    "not_json", "not_object", "data_not_string", "data_invalid_json",
    "missing_token", "bad_uuid", "empty_distinct_id", "deeply_nested",
)  # fmt: skip
_GARBAGE_NOW = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
_NESTING = 50_000  # far past any JSON parser's depth limit (Python's json gives up near 1000)


def garbage(*, count: int, seed: int = 0) -> Iterator[bytes]:
    """Yield `count` malformed message values, cycling through GARBAGE_KINDS in order."""
    if not isinstance(count, int) or count < 0:
        raise ValueError(f"count must be an int >= 0, got {count!r}")
    return _garbage(count, random.Random(seed))


def _garbage(count: int, rng: random.Random) -> Iterator[bytes]:
    for i in range(count):
        valid = next(generate(token="phc_garbage", events=1, persons=1, seed=rng.getrandbits(64), now=_GARBAGE_NOW))
        yield _spoil(GARBAGE_KINDS[i % len(GARBAGE_KINDS)], json.loads(valid.value), rng)


def _spoil(kind: str, envelope: dict[str, Any], rng: random.Random) -> bytes:
    """Break one aspect of a valid envelope, leaving the rest valid."""
    data = json.loads(envelope["data"])
    if kind == "not_json":  # a truncated message
        return json.dumps(envelope).encode()[: -rng.randint(1, 20)]
    if kind == "not_object":
        return json.dumps(rng.choice(([envelope], envelope["uuid"], None, 42))).encode()
    if kind == "data_not_string":
        envelope["data"] = data
    elif kind == "data_invalid_json":
        envelope["data"] = envelope["data"][: -rng.randint(1, 20)]
    elif kind == "missing_token":
        del envelope["token"]
    elif kind == "bad_uuid":
        envelope["uuid"] = rng.choice(("not-a-uuid", envelope["uuid"][:-4], ""))
    elif kind == "empty_distinct_id":
        envelope["distinct_id"] = data["distinct_id"] = data["properties"]["distinct_id"] = ""
        envelope["data"] = json.dumps(data)
    elif kind == "deeply_nested":
        data["properties"]["nested"] = "@NESTED@"
        nested = '{"a": ' * _NESTING + "1" + "}" * _NESTING
        envelope["data"] = json.dumps(data).replace('"@NESTED@"', nested)
    return json.dumps(envelope).encode()
