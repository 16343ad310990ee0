"""Probe parsers on recorded daemon output: FRR nhrpd JSON, strongSwan vici list-sas, ICMP packets."""

from __future__ import annotations

import ipaddress
import json
import struct
from pathlib import Path

import pytest
from vici.protocol import FiniteStream, Message

from labkit.probes import path
from labkit.probes.ipsec import ChildSa, IkeSa, parse_sas
from labkit.probes.nhrp import CacheEntry, NhsEntry, Shortcut, parse_cache, parse_nhs, parse_shortcuts

DATA = Path(__file__).resolve().parent.parent / "data"
ip = ipaddress.IPv4Address


def recorded(name: str):
    return json.loads((DATA / name).read_text())


# -- NHRP (FRR 8.4.4, recorded on the dmvpn_phase2 lab) ----------------------------------

def test_hub_nhrp_cache_frr_8_4():
    cache = parse_cache(recorded("frr844_hub_nhrp_cache.json"))
    assert [(e.type, e.protocol, e.nbma) for e in cache] == [
        ("local", ip("172.16.0.1"), ip("192.0.2.1")),
        ("dynamic", ip("172.16.0.3"), ip("192.0.2.3")),
        ("dynamic", ip("172.16.0.2"), ip("192.0.2.2")),
    ]
    # FRR 8.4 writes claimed_nbma (snake case)
    assert [e.claimed_nbma for e in cache] == [ip("192.0.2.1"), ip("192.0.2.3"), ip("192.0.2.2")]
    assert all(e.interface == "gre1" and e.used is False for e in cache)
    assert [e.identity for e in cache] == ["-", "", ""]


def test_nhrp_cache_newer_frr_camel_case():
    data = recorded("frr844_hub_nhrp_cache.json")
    for row in data["table"]:
        row["claimedNbma"] = row.pop("claimed_nbma")
    assert [e.claimed_nbma for e in parse_cache(data)] == [ip("192.0.2.1"), ip("192.0.2.3"), ip("192.0.2.2")]


def test_nhrp_cache_table_shapes():
    rows = recorded("frr844_hub_nhrp_cache.json")["table"]
    assert parse_cache(rows) == parse_cache({"table": rows})  # a bare list is accepted too
    assert parse_cache({"attr": {"entriesCount": 0}}) == [] == parse_cache(None) == parse_cache([])


def test_nhrp_cache_entry_tolerates_missing_and_bad_fields():
    entry = CacheEntry.from_json({"type": "negative", "protocol": "172.16.0.9", "nbma": "-"})
    assert entry == CacheEntry("", "negative", ip("172.16.0.9"), None, None, False, "")


def test_spoke_nhrp_nhs_frr_8_4():
    (nhs,) = parse_nhs(recorded("frr844_spoke_nhrp_nhs.json"))
    assert nhs == NhsEntry(interface="gre1", fqdn="192.0.2.1", nbma=ip("192.0.2.1"), protocol=ip("172.16.0.1"))


def test_nhrp_shortcuts():
    # shape written by nhrpd's show_ip_nhrp_shortcut(): "via" is absent while the cache entry is pending
    data = {"attr": {"entriesCount": 2}, "table": [
        {"type": "dynamic", "prefix": "10.0.2.0/24", "via": "172.16.0.3", "identity": ""},
        {"type": "incomplete", "prefix": "10.0.9.0/24", "identity": ""},
    ]}
    assert parse_shortcuts(data) == [
        Shortcut("dynamic", ipaddress.IPv4Network("10.0.2.0/24"), ip("172.16.0.3"), ""),
        Shortcut("incomplete", ipaddress.IPv4Network("10.0.9.0/24"), None, ""),
    ]


# -- IPsec (vici list-sas) ---------------------------------------------------------------

def vici_wire(block: dict) -> dict:
    """``block`` exactly as the vici package hands it over: through its own wire encoding."""
    return Message.deserialize(FiniteStream(Message.serialize(block)))


ESTABLISHED = {"dmvpn": {
    "uniqueid": "2", "version": "2", "state": "ESTABLISHED",
    "local-host": "192.0.2.2", "local-port": "500", "local-id": "192.0.2.2",
    "remote-host": "192.0.2.1", "remote-port": "500", "remote-id": "192.0.2.1",
    "initiator": "yes", "initiator-spi": "6b2f1a0c3d4e5f60", "responder-spi": "0f1e2d3c4b5a6978",
    "encr-alg": "AES_CBC", "encr-keysize": "256", "integ-alg": "HMAC_SHA2_256_128",
    "prf-alg": "PRF_HMAC_SHA2_256", "dh-group": "MODP_2048", "established": "12", "rekey-time": "13370",
    "child-sas": {"gre-2": {
        "name": "gre", "uniqueid": "2", "reqid": "1", "state": "INSTALLED", "mode": "TRANSPORT",
        "protocol": "ESP", "spi-in": "c1a2b3c4", "spi-out": "c5d6e7f8", "encr-alg": "AES_GCM_16",
        "encr-keysize": "256", "bytes-in": "1200", "packets-in": "10", "use-in": "1",
        "bytes-out": "1320", "packets-out": "11", "use-out": "1", "rekey-time": "3300",
        "life-time": "3780", "install-time": "12",
        "local-ts": ["192.0.2.2/32[gre]"], "remote-ts": ["192.0.2.1/32[gre]"],
    }},
}}
CONNECTING = {"dmvpn": {
    "uniqueid": "3", "version": "2", "state": "CONNECTING",
    "local-host": "192.0.2.2", "local-port": "500", "remote-host": "192.0.2.3", "remote-port": "500",
    "initiator": "yes", "initiator-spi": "1122334455667788", "responder-spi": "0000000000000000",
    "tasks-active": ["IKE_VENDOR", "IKE_INIT", "IKE_NATD"], "child-sas": {},
}}
TUNNEL_MODE_BEHIND_NAT = {"site": {
    "state": "ESTABLISHED", "local-host": "198.51.100.2", "remote-host": "203.0.113.9", "nat-any": "yes",
    "child-sas": {"net-7": {
        "name": "net", "state": "INSTALLED", "mode": "TUNNEL", "protocol": "ESP", "encap": "yes",
        "local-ts": ["10.0.1.0/24"], "remote-ts": ["10.0.2.0/24"],
    }},
}}


def test_vici_values_are_bytes():
    block = vici_wire(ESTABLISHED)
    sa = block["dmvpn"]
    assert sa["state"] == b"ESTABLISHED"
    assert sa["child-sas"]["gre-2"]["local-ts"] == [b"192.0.2.2/32[gre]"]


def test_parse_established_sa():
    (sa,) = parse_sas([vici_wire(ESTABLISHED)])
    assert (sa.name, sa.state, sa.local_host, sa.remote_host, sa.nat_any) == (
        "dmvpn", "ESTABLISHED", ip("192.0.2.2"), ip("192.0.2.1"), False)
    (child,) = sa.children
    assert child == ChildSa(name="gre", state="INSTALLED", mode="TRANSPORT", protocol="ESP", encap=False,
                            local_ts=("192.0.2.2/32[gre]",), remote_ts=("192.0.2.1/32[gre]",),
                            bytes_in=1200, bytes_out=1320, packets_in=10, packets_out=11, uniqueid="2",
                            rekey_time=3300, spi_in=0xC1A2B3C4, spi_out=0xC5D6E7F8, encr_alg="AES_GCM_16")
    assert child.protects_gre


def test_parse_sas_keeps_every_block_in_order():
    sas = parse_sas([vici_wire(ESTABLISHED), vici_wire(CONNECTING), vici_wire(TUNNEL_MODE_BEHIND_NAT)])
    assert [(s.name, s.state, s.remote_host) for s in sas] == [
        ("dmvpn", "ESTABLISHED", ip("192.0.2.1")), ("dmvpn", "CONNECTING", ip("192.0.2.3")),
        ("site", "ESTABLISHED", ip("203.0.113.9"))]
    assert sas[1].children == ()
    assert sas[2].nat_any and sas[2].children[0].encap
    assert parse_sas([]) == []


def test_protects_gre_needs_gre_selectors_on_both_sides():
    (site,) = parse_sas([vici_wire(TUNNEL_MODE_BEHIND_NAT)])
    assert not site.children[0].protects_gre
    half = ChildSa.from_vici("x", {"local-ts": [b"192.0.2.2/32[gre]"], "remote-ts": [b"192.0.2.1/32"]})
    assert not half.protects_gre
    assert not ChildSa.from_vici("x", {}).protects_gre  # no selectors at all
    assert ChildSa.from_vici("x", {}).name == "x" and ChildSa.from_vici("x", {}).bytes_in == 0


def test_ike_sa_without_child_section():
    sa = IkeSa.from_vici("dmvpn", {"state": b"CONNECTING", "remote-host": b"%any"})
    assert sa.children == () and sa.remote_host is None


# -- path: ICMP checksum and reply matching ----------------------------------------------

ME, TARGET, ROUTER = ip("10.0.1.2"), ip("10.0.2.2"), ip("10.0.1.1")
IDENT, SEQ = 0x4242, 7


def test_checksum_known_values():
    assert path._checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D  # RFC 1071, section 3
    header = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    assert path._checksum(header) == 0xB861  # a textbook IPv4 header
    assert path._checksum(b"\x01") == path._checksum(b"\x01\x00") == 0xFEFF  # odd length is zero-padded


def test_echo_request():
    pkt = path._echo(IDENT, SEQ)
    assert struct.unpack("!BBHHH", pkt[:8])[0:2] == (path.ECHO_REQUEST, 0)
    assert struct.unpack("!HH", pkt[4:8]) == (IDENT, SEQ)
    assert path._checksum(pkt) == 0  # a correct checksum sums to zero
    assert pkt[8:] == b"labkit-path-probe"


def ipv4(src, dst, payload: bytes, options: bytes = b"", ttl: int = 64) -> bytes:
    ihl = 5 + len(options) // 4
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 4 * ihl + len(payload), 0, 0, ttl, 1, 0,
                         src.packed, dst.packed) + options
    header = header[:10] + struct.pack("!H", path._checksum(header)) + header[12:]
    return header + payload


def icmp(ptype: int, rest: bytes, code: int = 0) -> bytes:
    msg = struct.pack("!BBH", ptype, code, 0) + rest
    return msg[:2] + struct.pack("!H", path._checksum(msg)) + msg[4:]


def echo_reply(src, ident=IDENT, seq=SEQ) -> bytes:
    return ipv4(src, ME, icmp(path.ECHO_REPLY, struct.pack("!HH", ident, seq) + b"labkit-path-probe"))


def error_reply(ptype, src, ident=IDENT, seq=SEQ, code=0, inner_options=b"", outer_options=b"") -> bytes:
    """An ICMP error quoting our probe's IP header and its first 8 ICMP bytes (RFC 792)."""
    quoted = ipv4(ME, TARGET, path._echo(ident, seq)[:8], options=inner_options, ttl=1)
    return ipv4(src, ME, icmp(ptype, b"\0\0\0\0" + quoted, code=code), options=outer_options)


def test_match_echo_reply():
    assert path._match(echo_reply(TARGET), IDENT, SEQ) == (path.ECHO_REPLY, TARGET)


def test_match_time_exceeded():
    assert path._match(error_reply(path.TIME_EXCEEDED, ROUTER), IDENT, SEQ) == (path.TIME_EXCEEDED, ROUTER)


def test_match_destination_unreachable():
    pkt = error_reply(path.DEST_UNREACH, ROUTER, code=1)
    assert path._match(pkt, IDENT, SEQ) == (path.DEST_UNREACH, ROUTER)


def test_match_honours_ip_options():
    nop4 = b"\x01\x01\x01\x00"  # three NOPs and an end-of-options: IHL 6
    for options in ({"outer_options": nop4}, {"inner_options": nop4}):
        pkt = error_reply(path.TIME_EXCEEDED, ROUTER, **options)
        assert path._match(pkt, IDENT, SEQ) == (path.TIME_EXCEEDED, ROUTER), options


@pytest.mark.parametrize("packet", [
    pytest.param(echo_reply(TARGET, seq=SEQ + 1), id="echo-reply-other-seq"),
    pytest.param(echo_reply(TARGET, ident=IDENT + 1), id="echo-reply-other-ident"),
    pytest.param(error_reply(path.TIME_EXCEEDED, ROUTER, seq=SEQ - 1), id="time-exceeded-older-probe"),
    pytest.param(ipv4(ME, TARGET, path._echo(IDENT, SEQ)), id="our-own-echo-request"),
    pytest.param(ipv4(ROUTER, ME, icmp(path.TIME_EXCEEDED, b"\0\0\0\0" + b"\x45" * 10)), id="truncated-quote"),
    pytest.param(ipv4(ROUTER, ME, b"\x00\x00\x00"), id="truncated-icmp"),
    pytest.param(ipv4(ROUTER, ME, icmp(5, b"\0" * 4 + b"\0" * 28)), id="redirect"),
])
def test_match_rejects(packet):
    assert path._match(packet, IDENT, SEQ) is None
