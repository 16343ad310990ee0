"""Loading valid topologies: the shipped lab, address assignment, and the published schema."""

from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from labkit.load import load, schema

ROOT = Path(__file__).resolve().parents[2]
PHASE2 = ROOT / "topologies" / "dmvpn_phase2" / "topology.yaml"
SHIPPED = sorted((ROOT / "topologies").glob("*/topology.yaml"))

ip = ipaddress.IPv4Address
iface = ipaddress.IPv4Interface


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "topology.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def addresses(topo) -> dict[str, str]:
    """``{"node:ifname": "a.b.c.d/len"}`` for every endpoint."""
    return {str(ep): str(ep.address) for ep in topo.endpoints()}


def test_shipped_topology_loads():
    topo = load(PHASE2)
    assert topo.name == "dmvpn_phase2"
    assert topo.source == PHASE2
    assert list(topo.nodes) == ["hub", "spoke1", "spoke2", "h0", "h1", "h2"]
    assert [n.name for n in topo.hubs()] == ["hub"]
    assert [n.name for n in topo.spokes()] == ["spoke1", "spoke2"]
    assert len(topo.links) == 3 and [s.name for s in topo.segments] == ["underlay"]
    dm = topo.dmvpn
    assert dm is not None
    assert (dm.underlay, dm.network, dm.ifname, dm.key) == ("underlay", ipaddress.IPv4Network("172.16.0.0/24"), "gre1", 42)
    assert (dm.network_id, dm.holdtime, dm.phase, dm.protocol, dm.asn) == (1, 60, 2, "bgp", 65000)
    assert dm.ipsec.enabled and dm.ipsec.psk is None
    assert dm.ipsec.ike_proposals == ("aes256-sha256-modp2048",)
    assert dm.ipsec.esp_proposals == ("aes256gcm16",)
    assert topo.required_kernel_features() == ["veth", "bridge", "gre", "nflog", "esp", "xfrm"]


def test_directory_resolves_to_its_topology_yaml():
    assert load(PHASE2.parent).source == PHASE2


def test_shipped_topology_addresses():
    topo = load(PHASE2)
    assert addresses(topo) == {
        "hub:eth1": "10.0.0.1/24", "h0:eth0": "10.0.0.2/24",
        "spoke1:eth1": "10.0.1.1/24", "h1:eth0": "10.0.1.2/24",
        "spoke2:eth1": "10.0.2.1/24", "h2:eth0": "10.0.2.2/24",
        "hub:eth0": "192.0.2.1/24", "spoke1:eth0": "192.0.2.2/24", "spoke2:eth0": "192.0.2.3/24",
    }
    assert {n: topo.nodes[n].tunnel_address for n in ("hub", "spoke1", "spoke2")} == {
        "hub": ip("172.16.0.1"), "spoke1": ip("172.16.0.2"), "spoke2": ip("172.16.0.3")}
    assert all(topo.nodes[h].tunnel_address is None for h in ("h0", "h1", "h2"))
    assert topo.owner_of(ip("192.0.2.3")) == "spoke2"
    assert topo.owner_of(ip("172.16.0.1")) == "hub"
    assert topo.owner_of(ip("203.0.113.1")) is None


def test_link_endpoints_get_first_and_second_host(tmp_path):
    topo = load(write(tmp_path, """\
        name: links
        nodes: {a: {role: router}, b: {role: router}}
        links:
          - endpoints: [b:eth3, a:eth0]
            prefix: 10.9.8.0/30
        """))
    (link,) = topo.links
    assert link.name == "b:eth3--a:eth0"
    assert [(str(ep), ep.address) for ep in link.endpoints] == [
        ("b:eth3", iface("10.9.8.1/30")), ("a:eth0", iface("10.9.8.2/30"))]


def test_segment_members_numbered_in_file_order(tmp_path):
    topo = load(write(tmp_path, """\
        name: seg
        nodes: {a: {role: router}, b: {role: host}, c: {role: host}}
        segments:
          lan:
            prefix: 10.1.0.0/24
            members: [c:eth0, a:eth0, b:eth0]
        """))
    assert [(str(ep), str(ep.address)) for ep in topo.segment("lan").members] == [
        ("c:eth0", "10.1.0.1/24"), ("a:eth0", "10.1.0.2/24"), ("b:eth0", "10.1.0.3/24")]


def test_explicit_endpoint_address_is_honoured(tmp_path):
    topo = load(write(tmp_path, """\
        name: explicit
        nodes: {a: {role: router}, b: {role: router}, c: {role: router}}
        segments:
          lan:
            prefix: 10.1.0.0/24
            members:
              - a:eth0
              - {node: b, ifname: eth0, address: 10.1.0.200/24}
              - c:eth0
        """))
    # the explicit address takes no number from the automatic sequence
    assert addresses(topo) == {"a:eth0": "10.1.0.1/24", "b:eth0": "10.1.0.200/24", "c:eth0": "10.1.0.3/24"}


DMVPN = """\
    name: tunnels
    nodes:
      s1: {{role: spoke{s1}}}
      s2: {{role: spoke{s2}}}
      hq: {{role: hub{hq}}}
    segments:
      wan:
        prefix: 198.51.100.0/24
        members: [s1:eth0, s2:eth0, hq:eth0]
    dmvpn:
      underlay: wan
      tunnel: {{network: 10.255.0.0/24}}
    """


def tunnel_addresses(tmp_path, s1="", s2="", hq="") -> dict[str, str]:
    topo = load(write(tmp_path, DMVPN.format(s1=s1, s2=s2, hq=hq)))
    return {name: str(node.tunnel_address) for name, node in topo.nodes.items()}


def test_tunnel_addresses_hub_first_then_spokes(tmp_path):
    # the hub is listed last, yet takes .1; the spokes follow in file order
    assert tunnel_addresses(tmp_path) == {"s1": "10.255.0.2", "s2": "10.255.0.3", "hq": "10.255.0.1"}


def test_explicit_tunnel_address_is_honoured_and_skipped(tmp_path):
    got = tunnel_addresses(tmp_path, s1=", tunnel_address: 10.255.0.1", hq=", tunnel_address: 10.255.0.254")
    assert got == {"s1": "10.255.0.1", "s2": "10.255.0.2", "hq": "10.255.0.254"}


def test_defaults_when_sections_are_short(tmp_path):
    topo = load(write(tmp_path, DMVPN.format(s1="", s2="", hq="")))
    dm = topo.dmvpn
    assert (dm.ifname, dm.key, dm.network_id, dm.holdtime, dm.asn, dm.authentication) == ("gre1", 42, 1, 60, 65000, None)
    assert dm.ipsec.enabled and dm.ipsec.psk is None


def test_routes_and_sysctls(tmp_path):
    topo = load(write(tmp_path, """\
        name: routes
        nodes:
          a:
            role: host
            routes:
              - {to: default, via: 10.0.0.1}
              - {to: 10.50.0.0/16, via: 10.0.0.254}
            sysctls: {net.ipv4.ip_forward: 1}
        """))
    a = topo.nodes["a"]
    assert [(str(r.to), str(r.via)) for r in a.routes] == [("0.0.0.0/0", "10.0.0.1"), ("10.50.0.0/16", "10.0.0.254")]
    assert a.sysctls == (("net.ipv4.ip_forward", "1"),)


def test_schema_is_valid_draft_2020_12():
    doc = schema()
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(doc)
    assert jsonschema.validators.validator_for(doc) is jsonschema.Draft202012Validator


def test_at_least_one_shipped_topology():
    assert PHASE2 in SHIPPED


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.parent.name)
def test_shipped_topology_matches_schema(path: Path):
    jsonschema.Draft202012Validator(schema()).validate(yaml.safe_load(path.read_text()))
