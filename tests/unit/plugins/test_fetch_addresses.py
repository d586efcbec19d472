"""The address rule of `meta.fetch` (`refusal`), whole: every special-purpose IPv4 and IPv6 block
at its first, a middle and its last address, the IPv6 forms that embed an IPv4 address with a
private and a public IPv4 inside, and public controls, the neighbours of each IPv4 block among them.

The blocks are written out here, not taken from fetch.py, so a block dropped there fails here."""

from __future__ import annotations

import ipaddress

import pytest

from plugin_server.plugins.meta.fetch import is_public_address, refusal

IPV4_BLOCKS = [
    ("0.0.0.0/8", "this network"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay anycast"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
]
IPV6_BLOCKS = [
    ("100::/64", "discard-only"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("2001::/23", "IETF protocol assignments"),  # minus Teredo (2001::/32), below
    ("fc00::/7", "unique local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
]


def corners(block: str) -> list[str]:
    network = ipaddress.ip_network(block)
    first, last = int(network.network_address), int(network.broadcast_address)
    if block == "2001::/23":
        first = int(ipaddress.ip_address("2001:1::"))  # 2001::/32 is Teredo, judged as such
    return [str(ipaddress.ip_address(n)) for n in (first, (first + last) // 2, last)]


def teredo(server: str, client: str) -> str:
    """A Teredo address: 2001:0::/32, the server, flags and port, and the client, obfuscated."""
    value = (0x20010000 << 96) | (int(ipaddress.ip_address(server)) << 64) | (0x8000 << 48) | (0xFFFF << 32)
    return str(ipaddress.ip_address(value | (~int(ipaddress.ip_address(client)) & 0xFFFFFFFF)))


REFUSED = (
    [(address, why) for block, why in IPV4_BLOCKS for address in corners(block)]
    + [("255.255.255.255", "reserved"), ("169.254.169.254", "link-local")]
    + [(address, why) for block, why in IPV6_BLOCKS for address in corners(block)]
    + [
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
        ("ff0e::1", "multicast"),
        # IPv4-mapped: judged as the IPv4 address inside
        ("::ffff:0.0.0.0", "IPv4-mapped 0.0.0.0: this network"),
        ("::ffff:127.0.0.1", "IPv4-mapped 127.0.0.1: loopback"),
        ("::ffff:10.1.2.3", "IPv4-mapped 10.1.2.3: private"),
        ("::ffff:169.254.169.254", "IPv4-mapped 169.254.169.254: link-local"),
        ("::ffff:100.64.0.1", "IPv4-mapped 100.64.0.1: shared address space"),
        ("::ffff:224.0.0.1", "IPv4-mapped 224.0.0.1: multicast"),
        ("::ffff:255.255.255.255", "IPv4-mapped 255.255.255.255: reserved"),
        # IPv4-compatible (deprecated): refused whatever it embeds
        ("::0.0.0.2", "IPv4-compatible (deprecated), embeds 0.0.0.2"),
        ("::127.0.0.1", "IPv4-compatible (deprecated), embeds 127.0.0.1"),
        ("::10.0.0.1", "IPv4-compatible (deprecated), embeds 10.0.0.1"),
        ("::8.8.8.8", "IPv4-compatible (deprecated), embeds 8.8.8.8"),
        ("::255.255.255.255", "IPv4-compatible (deprecated), embeds 255.255.255.255"),
        # IPv4-translated (SIIT, ::ffff:0:0:0/96) and the rest of ::/8: not global unicast
        ("::ffff:0:127.0.0.1", "not global unicast"),
        ("::ffff:0:8.8.8.8", "not global unicast"),
        ("::1:0:0:1", "not global unicast"),
        # NAT64, well-known prefix (RFC 6052) and local-use (RFC 8215): refused whatever they embed
        ("64:ff9b::", "NAT64 (64:ff9b::/96), embeds 0.0.0.0"),
        ("64:ff9b::127.0.0.1", "NAT64 (64:ff9b::/96), embeds 127.0.0.1"),
        ("64:ff9b::169.254.169.254", "NAT64 (64:ff9b::/96), embeds 169.254.169.254"),
        ("64:ff9b::192.168.1.1", "NAT64 (64:ff9b::/96), embeds 192.168.1.1"),
        ("64:ff9b::8.8.8.8", "NAT64 (64:ff9b::/96), embeds 8.8.8.8"),
        ("64:ff9b::ffff:ffff", "NAT64 (64:ff9b::/96), embeds 255.255.255.255"),
        ("64:ff9b::1:0:0", "not global unicast"),  # outside the /96, still in ::/8
        ("64:ff9b:1::", "local-use NAT64"),
        ("64:ff9b:1::a00:1", "local-use NAT64"),
        ("64:ff9b:1::808:808", "local-use NAT64"),
        ("64:ff9b:1:ffff:ffff:ffff:ffff:ffff", "local-use NAT64"),
        # 6to4 (2002::/16, the IPv4 address in bits 16-48): refused whatever it embeds
        ("2002::", "6to4 (2002::/16), embeds 0.0.0.0"),
        ("2002:7f00:1::", "6to4 (2002::/16), embeds 127.0.0.1"),
        ("2002:a00:1::1", "6to4 (2002::/16), embeds 10.0.0.1"),
        ("2002:a9fe:a9fe::1", "6to4 (2002::/16), embeds 169.254.169.254"),
        ("2002:808:808::1", "6to4 (2002::/16), embeds 8.8.8.8"),
        ("2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "6to4 (2002::/16), embeds 255.255.255.255"),
        # Teredo (2001::/32: the server in bits 32-64, the client obfuscated in the last 32)
        (teredo("65.54.227.120", "127.0.0.1"), "Teredo (2001::/32), server 65.54.227.120, client 127.0.0.1"),
        (teredo("65.54.227.120", "192.168.0.1"), "Teredo (2001::/32), server 65.54.227.120, client 192.168.0.1"),
        (teredo("10.0.0.1", "8.8.8.8"), "Teredo (2001::/32), server 10.0.0.1, client 8.8.8.8"),
        (teredo("65.54.227.120", "8.8.8.8"), "Teredo (2001::/32), server 65.54.227.120, client 8.8.8.8"),
        ("2001::", "Teredo (2001::/32)"),
        ("2001:0:ffff:ffff:ffff:ffff:ffff:ffff", "Teredo (2001::/32)"),
        # not global unicast (outside 2000::/3), whatever Python's ipaddress calls it
        ("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "not global unicast"),
        ("4000::1", "not global unicast"),
        ("5f00::1", "not global unicast"),  # SRv6 SIDs (RFC 9602)
        ("e000::1", "not global unicast"),
    ]
)

PUBLIC = [
    "1.1.1.1",
    "8.8.8.8",
    "93.184.216.34",
    "1.0.0.0",
    "223.255.255.255",
    # the neighbours of each IPv4 block
    "9.255.255.255",
    "11.0.0.0",
    "100.63.255.255",
    "100.128.0.0",
    "126.255.255.255",
    "128.0.0.0",
    "169.253.255.255",
    "169.255.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "191.255.255.255",
    "192.0.1.0",
    "192.0.3.0",
    "192.88.98.255",
    "192.88.100.0",
    "192.167.255.255",
    "192.169.0.0",
    "198.17.255.255",
    "198.20.0.0",
    "198.51.99.255",
    "198.51.101.0",
    "203.0.112.255",
    "203.0.114.0",
    # IPv4-mapped public addresses are those IPv4 addresses
    "::ffff:8.8.8.8",
    "::ffff:93.184.216.34",
    # native global unicast IPv6, the neighbours of 2001::/23, 2001:db8::/32, 2002::/16 and 3fff::/20
    "2000::1",
    "2001:200::1",
    "2001:4860:4860::8888",
    "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
    "2001:db9::",
    "2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "2003::1",
    "2606:4700:4700::1111",
    "2a00:1450:4001:81c::200e",
    "3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "3fff:1000::",
]


@pytest.mark.parametrize(("address", "why"), REFUSED)
def test_refused(address: str, why: str):
    ip = ipaddress.ip_address(address)
    reason = refusal(ip)
    assert reason is not None and reason.startswith(why), reason
    assert not is_public_address(ip)


@pytest.mark.parametrize("address", PUBLIC)
def test_public(address: str):
    ip = ipaddress.ip_address(address)
    assert refusal(ip) is None and is_public_address(ip)


def test_a_block_reason_names_the_block():
    assert refusal(ipaddress.ip_address("10.9.8.7")) == "private (10.0.0.0/8)"
    assert refusal(ipaddress.ip_address("fd00::1")) == "unique local (fc00::/7)"
