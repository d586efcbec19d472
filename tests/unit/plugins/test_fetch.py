"""`meta.fetch` end to end without the network: a stub resolver stands for DNS and an
httpx.MockTransport for every server, so each test sees exactly which names were looked up and
where each request went.

The hostile corpus's `attack_fetch_*.py` files run here with a real `meta.fetch`
(tests/unit/vm/test_hostile.py runs them too, with no meta)."""

from __future__ import annotations

import re
import socket
import urllib.parse
from pathlib import Path

import httpx
import pytest

from plugin_server.plugins.meta import MetaError
from plugin_server.plugins.meta.fetch import MAX_FETCH_BYTES, Fetch
from vm.errors import PluginRuntimeError
from vm.sandbox import compile_plugin

CORPUS = Path(__file__).parents[2] / "hostile"
ATTACKS = sorted(CORPUS.glob("attack_fetch_*.py"))
TIMEOUT = 2.0
PUBLIC = "93.184.216.34"
NAMES = {  # what the attacker's DNS answers (RFC 2606 names: nothing real is asked)
    "public.example": [PUBLIC],
    "v6.public.example": ["2606:4700:4700::1111"],
    "metadata-6to4.attacker.test": ["2002:a9fe:a9fe::"],
    "mixed.attacker.test": [PUBLIC, "64:ff9b::a9fe:a9fe"],
}


class World:
    """DNS and the servers: `NAMES` resolve, numeric forms resolve as the system resolver would
    (AI_NUMERICHOST: no lookup), anything else does not. The only server is PUBLIC (and the public
    IPv6 address): `/redirect?to=URL` answers 302 to URL, anything else 200 with the Host header."""

    def __init__(self, names: dict[str, list[str]] | None = None) -> None:
        self.names = NAMES if names is None else names
        self.lookups: list[str] = []
        self.requests: list[httpx.Request] = []

    def resolve(self, hostname: str, port: int) -> list[str]:
        self.lookups.append(hostname)
        if hostname in self.names:
            return list(self.names[hostname])
        infos = socket.getaddrinfo(hostname, port, proto=socket.IPPROTO_TCP, flags=socket.AI_NUMERICHOST)
        return [str(info[4][0]) for info in infos]

    def serve(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host not in (PUBLIC, "2606:4700:4700::1111"):
            return httpx.Response(200, text="BREACH")  # never asserted on: the test fails on requests
        if request.url.path == "/redirect":
            return httpx.Response(302, headers={"Location": request.url.params["to"]})
        if request.url.path == "/big":
            return httpx.Response(200, content=b"x" * (MAX_FETCH_BYTES + 1))
        return httpx.Response(200, text=request.headers["host"])

    def fetch(self, *, allow_private: bool = False) -> Fetch:
        return Fetch(allow_private=allow_private, resolver=self.resolve, transport=httpx.MockTransport(self.serve))

    def hosts(self) -> list[str]:
        return [request.url.host for request in self.requests]


class FetchOnly:
    """The smallest `meta` for an attack: only `fetch` (the corpus reaches nothing else)."""

    def __init__(self, fetch: Fetch) -> None:
        self.fetch = fetch


def test_the_corpus_has_the_fetch_attacks():
    assert len(ATTACKS) >= 12


@pytest.mark.parametrize("path", ATTACKS, ids=[p.stem.removeprefix("attack_") for p in ATTACKS])
def test_a_fetch_attack_is_refused_before_any_request_to_it(path: Path):
    world = World()
    instance = compile_plugin({"main.py": path.read_text()}).instantiate(timeout=TIMEOUT, log=lambda k, t: None)
    event = {"event": "pageview", "distinct_id": "u1", "properties": {}}
    with pytest.raises(PluginRuntimeError) as refused:
        instance.call(
            instance.exports["process_event"], event, FetchOnly(world.fetch()), timeout=TIMEOUT, log=lambda k, t: None
        )
    assert refused.value.error_type == "MetaError" and "not a public address" in refused.value.message
    assert set(world.hosts()) <= {PUBLIC}  # only the public server of the redirect attack was asked


@pytest.mark.parametrize(
    ("url", "names", "reason"),
    [
        ("http://[::ffff:127.0.0.1]/", {}, "IPv4-mapped 127.0.0.1: loopback"),
        ("http://[::ffff:8.8.8.8]:8080/", {}, None),
        ("http://[64:ff9b::8.8.8.8]/", {}, "NAT64"),
        ("http://[2002:808:808::1]/", {}, "6to4 (2002::/16), embeds 8.8.8.8"),
        ("http://localhost/", {"localhost": ["127.0.0.1", "::1"]}, "loopback"),
        ("http://two.test/", {"two.test": [PUBLIC, "10.0.0.1"]}, "private (10.0.0.0/8)"),
        ("http://two.test/", {"two.test": [PUBLIC, "2606:4700:4700::1111"]}, None),
        ("http://scoped.test/", {"scoped.test": ["fe80::1%eth0"]}, "link-local"),
        ("http://2130706433/", {}, "loopback"),
    ],
)
def test_every_resolved_address_is_judged_before_any_request(url, names, reason):
    world = World(names | {"public.example": [PUBLIC]})
    if reason is None:
        assert world.fetch()(url)["ok"]
        assert len(world.requests) == 1
    else:
        with pytest.raises(MetaError, match=f"not a public address: .*{re.escape(reason)}"):
            world.fetch()(url)
        assert world.requests == []


def test_the_request_goes_to_the_checked_address_with_the_name_in_host():
    world = World()
    response = world.fetch()("http://public.example:8080/path?q=1")
    (request,) = world.requests
    assert str(request.url) == f"http://{PUBLIC}:8080/path?q=1"
    assert response["text"] == "public.example:8080"
    assert world.lookups == ["public.example"]  # once: no second resolution to rebind


def test_an_ipv4_mapped_public_address_is_fetched_as_ipv4():
    world = World()
    world.fetch()(f"http://[::ffff:{PUBLIC}]/")
    assert world.hosts() == [PUBLIC]


def test_a_literal_address_is_not_looked_up():
    world = World()
    world.fetch()(f"http://{PUBLIC}/")
    world.fetch()("http://[2606:4700:4700::1111]/")
    assert world.lookups == [] and world.hosts() == [PUBLIC, "2606:4700:4700::1111"]


def test_every_redirect_hop_is_resolved_and_checked_again():
    world = World()
    to_public = "http://public.example/redirect?to=" + urllib.parse.quote("http://v6.public.example/done")
    assert world.fetch()(to_public)["text"] == "v6.public.example"
    assert world.lookups == ["public.example", "v6.public.example"]
    bounce = "http://public.example/redirect?to=" + urllib.parse.quote("http://metadata-6to4.attacker.test/")
    with pytest.raises(MetaError, match="6to4 .* embeds 169.254.169.254"):
        world.fetch()(bounce)
    assert world.hosts() == [PUBLIC, "2606:4700:4700::1111", PUBLIC]


def test_allow_private_lifts_the_rule():
    world = World()
    world.fetch(allow_private=True)("http://[::ffff:127.0.0.1]/")
    world.fetch(allow_private=True)("http://metadata-6to4.attacker.test/")
    assert world.hosts() == ["::ffff:7f00:1", "2002:a9fe:a9fe::"]  # as given, not normalized


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://nowhere.test/", "cannot resolve 'nowhere.test'"),
        ("http://empty.test/", "cannot resolve 'empty.test': no address"),
        ("http://junk.test/", "is not an address"),
        ("http://public.example/big", f"response larger than {MAX_FETCH_BYTES} bytes"),
        ("ftp://public.example/", "only http(s)"),
    ],
)
def test_failures_are_a_meta_error(url, message):
    world = World({"public.example": [PUBLIC], "empty.test": [], "junk.test": ["not-an-ip"]})
    with pytest.raises(MetaError, match=re.escape(message)):
        world.fetch()(url)
