"""Phase 1 expansion: spokes that register but never resolve, OSPF over the tunnel, multicast via nhrpd."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from labkit.errors import TopologyError
from labkit.expand import expand, multicast_rules
from labkit.expand.frr import CONF_DIR
from labkit.load import load

TOPOS = Path(__file__).resolve().parents[2] / "topologies"
OSPF = TOPOS / "dmvpn_phase1" / "topology.yaml"
net, ip = ipaddress.IPv4Network, ipaddress.IPv4Address


def conf(plan, node: str, daemon: str) -> list[str]:
    return [line.strip() for line in plan.nodes[node].files[f"{CONF_DIR}/{daemon}.conf"].splitlines()]


@pytest.fixture(scope="module")
def ospf():
    return expand(load(OSPF))


def test_every_tunnel_is_multipoint_with_a_host_address_and_multicast(ospf):
    """FRR's nhrpd reads NHRP only from mGRE (it needs the sender's NBMA address) and only with
    a /32 tunnel address; OSPF's hellos must leave through the tunnel."""
    for name in ("hub", "spoke1"):
        gre = ospf.nodes[name].gre
        assert gre.multicast and gre.address.network.prefixlen == 32, gre


def test_hub_hands_tunnel_multicast_to_nhrpd_and_no_redirect(ospf):
    hub = conf(ospf, "hub", "nhrpd")
    assert "nhrp multicast-nflog-group 2" in hub and "ip nhrp map multicast dynamic" in hub
    assert "ip nhrp redirect" not in hub and not any(l.startswith("nhrp nflog-group") for l in hub)
    assert ospf.nodes["hub"].firewall == multicast_rules("gre1")
    log, drop = multicast_rules("gre1")
    assert log[log.index("-d"):] == ("-d", "224.0.0.0/24", "-o", "gre1", "-j", "NFLOG", "--nflog-group", "2")
    assert drop[-2:] == ("-j", "DROP")


def test_spokes_register_but_never_resolve_and_send_multicast_to_the_hub(ospf):
    spoke = conf(ospf, "spoke1", "nhrpd")
    assert "ip nhrp nhs dynamic nbma 203.0.113.1" in spoke and "ip nhrp shortcut" not in spoke
    assert "ip nhrp map multicast 203.0.113.1" in spoke and "nhrp multicast-nflog-group 2" in spoke
    assert ospf.nodes["spoke1"].firewall == multicast_rules("gre1")


def test_ospf_point_to_multipoint_on_the_tunnel_and_passive_lans(ospf):
    hub, spoke = conf(ospf, "hub", "ospfd"), conf(ospf, "spoke1", "ospfd")
    for c in (hub, spoke):
        assert "ip ospf network point-to-multipoint" in c and "ip ospf area 0" in c
    assert "ip ospf passive" in spoke  # the LAN is advertised, not peered on
    assert {d.name for d in ospf.nodes["hub"].daemons} == {"zebra", "nhrpd", "ospfd", "charon"}
    assert not any(r.blackhole for r in ospf.nodes["hub"].routes)  # BGP's tunnel-net blackhole is not needed


@pytest.mark.parametrize("change, message", [
    (("phase: 1", "phase: 2"), "ospf is supported with phase 1 only"),
    (("protocol: ospf", "protocol: bgp"), "phase 1 runs OSPF over the tunnel, not bgp"),
    (("protocol: ospf", "protocol: eigrp"), "EIGRP cannot run over an NHRP tunnel with FRR"),
])
def test_phase_and_protocol_must_agree(tmp_path, change, message):
    path = tmp_path / "topology.yaml"
    path.write_text(OSPF.read_text().replace(*change))
    with pytest.raises(TopologyError, match=message):
        load(path)

