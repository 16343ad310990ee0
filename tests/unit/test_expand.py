"""Expansion of a topology into per-node plans: kernel config, FRR and strongSwan files."""

from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path

import pytest

from labkit.expand import expand, nflog_rule
from labkit.expand.frr import CONF_DIR
from labkit.expand.plan import RoutePlan, WirePlan
from labkit.expand.strongswan import SWAN_DIR
from labkit.load import load
from labkit.swanload import parse

PHASE2 = Path(__file__).resolve().parents[2] / "topologies" / "dmvpn_phase2" / "topology.yaml"
NHRPD, BGPD, ZEBRA = f"{CONF_DIR}/nhrpd.conf", f"{CONF_DIR}/bgpd.conf", f"{CONF_DIR}/zebra.conf"
SWANCTL = f"{SWAN_DIR}/swanctl.conf"

net = ipaddress.IPv4Network
ip = ipaddress.IPv4Address


@pytest.fixture(scope="module")
def topo():
    return load(PHASE2)


@pytest.fixture(scope="module")
def plan(topo):
    return expand(topo)


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "topology.yaml"
    path.write_text(textwrap.dedent(text))
    return path


# -- kernel ------------------------------------------------------------------------------

def test_hub_gets_the_nflog_rule(plan):
    fw = plan.nodes["hub"].firewall
    assert fw == [nflog_rule("gre1")]
    (rule,) = fw
    assert isinstance(rule, tuple) and all(isinstance(a, str) for a in rule)
    assert rule[:2] == ("iptables", "-w")
    i = rule.index("--nflog-group")
    assert rule[i + 1] == "1"
    assert rule[rule.index("-m") + 1] == "hashlimit"
    assert rule[rule.index("-j") + 1] == "NFLOG"
    assert ("-i", "gre1", "-o", "gre1") == rule[rule.index("-i"):rule.index("-i") + 4]


def test_only_the_hub_has_firewall_rules(plan):
    assert [n for n, p in plan.nodes.items() if p.firewall] == ["hub"]


def test_hub_blackholes_the_tunnel_network(plan):
    assert RoutePlan(net("172.16.0.0/24"), blackhole=True) in plan.nodes["hub"].routes
    assert not any(r.blackhole for n in ("spoke1", "spoke2") for r in plan.nodes[n].routes)


def test_gre_and_addresses(plan):
    hub, spoke2 = plan.nodes["hub"], plan.nodes["spoke2"]
    assert hub.addresses == {"eth1": [ipaddress.IPv4Interface("10.0.0.1/24")],
                             "eth0": [ipaddress.IPv4Interface("192.0.2.1/24")]}
    gre = spoke2.gre
    assert (gre.ifname, gre.key, gre.local, gre.dev, str(gre.address)) == ("gre1", 42, ip("192.0.2.3"), "eth0", "172.16.0.3/32")
    assert all(plan.nodes[h].gre is None for h in ("h0", "h1", "h2"))


def test_router_sysctls(plan):
    for name in ("hub", "spoke1"):
        s = plan.nodes[name].sysctls
        assert s["net.ipv4.ip_forward"] == "1"
        assert s["net.ipv4.conf.gre1.rp_filter"] == "0"
    assert plan.nodes["h1"].sysctls == {}


def test_hosts_default_route_via_their_router(plan):
    assert plan.nodes["h0"].routes == [RoutePlan(net("0.0.0.0/0"), ip("10.0.0.1"))]
    assert plan.nodes["h1"].routes == [RoutePlan(net("0.0.0.0/0"), ip("10.0.1.1"))]
    assert plan.nodes["h2"].routes == [RoutePlan(net("0.0.0.0/0"), ip("10.0.2.1"))]


def test_wires(plan):
    assert plan.segments == ["underlay"]
    assert WirePlan("hub", "eth1", "h0", "eth0") in plan.wires
    underlay = [w for w in plan.wires if w.segment == "underlay"]
    assert [(w.a_node, w.a_ifname, w.b_node, w.b_ifname) for w in underlay] == [
        ("hub", "eth0", "@underlay", "p0"), ("spoke1", "eth0", "@underlay", "p1"), ("spoke2", "eth0", "@underlay", "p2")]


# -- FRR ---------------------------------------------------------------------------------

def test_hub_nhrpd(plan):
    conf = lines(plan.nodes["hub"].files[NHRPD])
    assert "ip nhrp redirect" in conf
    assert "nhrp nflog-group 1" in conf  # the group the firewall rule logs to
    assert not any(line.startswith("ip nhrp nhs") for line in conf)


@pytest.mark.parametrize("spoke", ["spoke1", "spoke2"])
def test_spoke_nhrpd(plan, spoke):
    conf = lines(plan.nodes[spoke].files[NHRPD])
    for expected in ("ip nhrp nhs dynamic nbma 192.0.2.1", "ip nhrp shortcut", "ip nhrp registration no-unique",
                     "ip nhrp network-id 1", "ip nhrp holdtime 60", "tunnel source eth0"):
        assert expected in conf
    assert "ip nhrp redirect" not in conf
    assert conf.index("interface gre1") < conf.index("ip nhrp shortcut") < conf.index("exit")


def test_hub_bgpd_listen_range_after_peer_group(plan):
    conf = lines(plan.nodes["hub"].files[BGPD])
    assert conf.index("neighbor SPOKES peer-group") < conf.index("bgp listen range 172.16.0.0/24 peer-group SPOKES")
    assert "neighbor SPOKES route-reflector-client" in conf
    assert "neighbor SPOKES remote-as 65000" in conf
    assert "network 172.16.0.0/24" in conf and "network 10.0.0.0/24" in conf
    assert "bgp router-id 172.16.0.1" in conf


def test_spoke_bgpd_peers_with_the_hub(plan):
    conf = lines(plan.nodes["spoke1"].files[BGPD])
    assert "neighbor 172.16.0.1 remote-as 65000" in conf
    assert "neighbor 172.16.0.1 activate" in conf
    assert "network 10.0.1.0/24" in conf
    assert "network 192.0.2.0/24" not in conf  # the underlay is never announced
    assert not any("listen range" in line for line in conf)


def test_daemons(plan):
    assert [d.name for d in plan.nodes["hub"].daemons] == ["zebra", "nhrpd", "bgpd", "charon"]
    assert all(isinstance(a, str) for d in plan.nodes["hub"].daemons for a in d.argv)
    assert plan.nodes["h1"].daemons == [] and plan.nodes["h1"].files == {}


# -- strongSwan --------------------------------------------------------------------------

def test_swanctl_transport_mode_gre_trap(plan):
    conf = parse(plan.nodes["spoke1"].files[SWANCTL])
    conn = conf["connections"]["dmvpn"]
    assert conn["local_addrs"] == "192.0.2.2" and conn["remote_addrs"] == "%any"
    assert conn["proposals"] == "aes256-sha256-modp2048"
    child = conn["children"]["gre"]
    assert child["mode"] == "transport"
    assert child["local_ts"] == child["remote_ts"] == "dynamic[gre]"
    assert child["start_action"] == "trap"
    assert child["esp_proposals"] == "aes256gcm16"
    assert plan.nodes["spoke1"].swanctl == SWANCTL


def test_psk_generated_and_shared_by_all_nodes(topo, plan):
    assert topo.dmvpn.ipsec.psk is None
    assert isinstance(plan.psk, str) and len(plan.psk) >= 16
    secrets = {parse(plan.nodes[n].files[SWANCTL])["secrets"]["ike-dmvpn"]["secret"] for n in ("hub", "spoke1", "spoke2")}
    assert secrets == {plan.psk}
    assert expand(topo).psk != expand(topo).psk


def test_psk_argument_used_when_topology_has_none(topo):
    assert expand(topo, psk="given-by-caller").psk == "given-by-caller"


TOPO_WITH_EXTRAS = """\
    name: extras
    nodes:
      hub:
        role: hub
        frr_extra:
          bgpd: |
            router bgp 65000
             bgp graceful-shutdown
          nhrpd: "debug nhrp all"
        swanctl_extra: |
          authorities {
            labkit-test {
              crl_uris = http://crl.invalid/x.crl
            }
          }
      spoke1: {role: spoke}
      h1: {role: host}
      lan2: {role: host}
      r: {role: router}
    segments:
      wan:
        prefix: 192.0.2.0/24
        members: [hub:eth0, spoke1:eth0]
      lan:
        prefix: 10.0.5.0/24
        members: [lan2:eth0, r:eth0]
    links:
      - endpoints: [spoke1:eth1, h1:eth0]
        prefix: 10.0.1.0/24
    dmvpn:
      underlay: wan
      tunnel: {network: 172.16.0.0/24}
      ipsec: {psk: "fixed-secret-123"}
    """


@pytest.fixture
def extras(tmp_path):
    return load(write(tmp_path, TOPO_WITH_EXTRAS))


def test_topology_psk_wins(extras):
    first, second = expand(extras), expand(extras, psk="ignored-argument")
    assert first.psk == second.psk == "fixed-secret-123"
    assert 'secret = "fixed-secret-123"' in first.nodes["spoke1"].files[SWANCTL]


def test_frr_extra_appended(extras):
    hub = expand(extras).nodes["hub"]
    bgpd, nhrpd = hub.files[BGPD], hub.files[NHRPD]
    assert bgpd.index("route-reflector-client") < bgpd.index("! --- frr_extra.bgpd")
    assert bgpd.rstrip().endswith("router bgp 65000\n bgp graceful-shutdown")
    assert nhrpd.rstrip().endswith("debug nhrp all")
    assert "frr_extra" not in hub.files[ZEBRA]
    assert "frr_extra" not in expand(extras).nodes["spoke1"].files[BGPD]


def test_swanctl_extra_appended_and_parseable(extras):
    plan = expand(extras)
    conf = plan.nodes["hub"].files[SWANCTL]
    assert "# --- swanctl_extra (from the topology) ---" in conf
    parsed = parse(conf)
    assert parsed["authorities"]["labkit-test"]["crl_uris"] == "http://crl.invalid/x.crl"
    assert parsed["connections"]["dmvpn"]["children"]["gre"]["mode"] == "transport"
    assert "swanctl_extra" not in plan.nodes["spoke1"].files[SWANCTL]


def test_host_on_segment_routes_via_the_segment_router(extras):
    plan = expand(extras)
    assert plan.nodes["lan2"].routes == [RoutePlan(net("0.0.0.0/0"), ip("10.0.5.2"))]
    assert [d.name for d in plan.nodes["r"].daemons] == ["zebra"]
    assert plan.nodes["r"].sysctls["net.ipv4.ip_forward"] == "1"


def test_explicit_host_route_replaces_the_default(tmp_path):
    topo = load(write(tmp_path, """\
        name: hostroute
        nodes:
          r: {role: router}
          h: {role: host, routes: [{to: 10.99.0.0/16, via: 10.0.0.1}]}
        links:
          - endpoints: [r:eth0, h:eth0]
            prefix: 10.0.0.0/24
        """))
    plan = expand(topo)
    assert plan.nodes["h"].routes == [RoutePlan(net("10.99.0.0/16"), ip("10.0.0.1"))]
    assert plan.psk is None


def test_ipsec_disabled_has_no_strongswan(tmp_path):
    text = TOPO_WITH_EXTRAS.replace('ipsec: {psk: "fixed-secret-123"}', "ipsec: {enabled: false}")
    plan = expand(load(write(tmp_path, text)))
    assert plan.psk is None
    hub = plan.nodes["hub"]
    assert hub.swanctl is None and SWANCTL not in hub.files
    assert "charon" not in [d.name for d in hub.daemons]


PHASE3 = PHASE2.parents[1] / "dmvpn_phase3" / "topology.yaml"


def test_phase3_hub_advertises_a_computed_summary_and_does_not_reflect():
    topo = load(PHASE3)
    assert topo.summary() == net("10.0.0.0/22")
    hub = lines(expand(topo).nodes["hub"].files[BGPD])
    assert "aggregate-address 10.0.0.0/22 summary-only" in hub
    assert "neighbor SPOKES next-hop-self force" in hub
    assert "neighbor SPOKES route-reflector-client" not in hub
    spoke = lines(expand(topo).nodes["spoke1"].files[NHRPD])
    assert "ip nhrp shortcut" in spoke and "ip nhrp redirect" in lines(expand(topo).nodes["hub"].files[NHRPD])


def test_phase2_has_no_summary(topo, plan):
    assert topo.summary() is None
    assert not any(line.startswith("aggregate-address") for line in lines(plan.nodes["hub"].files[BGPD]))


def test_a_given_summary_must_cover_every_lan(tmp_path):
    from labkit.errors import TopologyError

    text = PHASE3.read_text().replace("routing: {protocol: bgp, asn: 65000}",
                                      "routing: {protocol: bgp, asn: 65000, summary: 10.0.0.0/23}")
    path = tmp_path / "topology.yaml"
    path.write_text(text)
    with pytest.raises(TopologyError, match=r"the summary 10.0.0.0/23 does not cover 10.0.2.0/24, a LAN of spoke2"):
        load(path)
    path.write_text(text.replace("10.0.0.0/23", "10.0.0.0/16"))
    assert load(path).summary() == net("10.0.0.0/16")
    path.write_text(text.replace("10.0.0.0/23", "10.0.0.0/16").replace("phase: 3", "phase: 2"))
    with pytest.raises(TopologyError, match="a summary applies to phase 3 only"):
        load(path)


NAT = PHASE2.parents[1] / "dmvpn_nat" / "topology.yaml"


def test_a_spoke_behind_a_nat_box_uses_its_private_address_and_routes_through_the_nat():
    topo = load(NAT)
    assert str(topo.nbma("spoke1")) == "spoke1:eth0"
    assert topo.public_nbma("spoke1") == ip("203.0.113.2") and topo.public_nbma("spoke2") == ip("203.0.113.3")
    assert topo.lans("spoke1") == [net("10.0.1.0/24")]
    assert "nat" in topo.required_kernel_features()
    plan = expand(topo)
    s1 = plan.nodes["spoke1"]
    assert s1.gre.local == ip("192.168.1.2") and s1.gre.dev == "eth0"
    assert RoutePlan(net("0.0.0.0/0"), ip("192.168.1.1")) in s1.routes
    assert "ip nhrp nhs dynamic nbma 203.0.113.1" in lines(s1.files[NHRPD])
    nat = plan.nodes["nat1"]
    assert nat.firewall == [("iptables", "-w", "-t", "nat", "-A", "POSTROUTING", "-o", "eth0", "-j", "MASQUERADE")]
    assert nat.sysctls["net.ipv4.ip_forward"] == "1" and not nat.daemons


def test_a_nat_box_needs_an_outside(tmp_path):
    from labkit.errors import TopologyError

    text = NAT.read_text().replace("nat1:   {role: nat}", "nat1:   {role: nat, outside: eth7}")
    path = tmp_path / "topology.yaml"
    path.write_text(text)
    with pytest.raises(TopologyError, match=r"nodes.nat1.outside: NAT box 'nat1' has no outside interface 'eth7'"):
        load(path)


def test_vici_mode_renders_tunnel_protection_and_an_untrapped_child():
    plan = expand(load(PHASE2.parents[1] / "dmvpn_vici" / "topology.yaml"))
    assert "tunnel protection vici profile dmvpn" in lines(plan.nodes["spoke1"].files[NHRPD])
    swanctl = plan.nodes["spoke1"].files[SWANCTL]
    assert "start_action = none" in swanctl and "dmvpn {" in swanctl.split("children {", 1)[1]
    trap = expand(load(PHASE2)).nodes["spoke1"]
    assert "start_action = trap" in trap.files[SWANCTL]
    assert not any("tunnel protection" in line for line in lines(trap.files[NHRPD]))
