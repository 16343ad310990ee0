"""The tunnel catalogue without a kernel: what each topology expands to, and the report's table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit import catalogue
from labkit.expand import expand
from labkit.load import load

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"


def plan_of(name: str):
    return expand(load(TOPOLOGIES / name), psk="unit-test-key")


def swanctl(plan, node: str) -> str:
    return plan.nodes[node].files["/run/labkit/strongswan/swanctl.conf"]


def test_the_catalogue_lists_every_seed_scenario_and_the_dmvpn_row():
    names = [d.name for d in catalogue.catalogue_dirs(TOPOLOGIES)]
    assert names == catalogue.ORDER


@pytest.mark.parametrize("name, kind, mode, local_ts", [
    ("ipsec_tunnel", None, "tunnel", "192.168.10.0/24"),
    ("vti", "xfrm", "tunnel", "0.0.0.0/0"),
    ("gre", "gre", None, None),
    ("gre_ipsec_transport", "gre", "transport", "192.168.50.1/32[47]"),
    ("gre_ipsec_tunnel", "gre", "tunnel", "192.168.50.1/32[47]"),
    ("gre_ipsec_tunnel_loopback", "gre", "tunnel", "192.168.1.1/32[47]"),
    ("ipip", "ipip", None, None),
    ("ipip_ipsec_transport", "ipip", "transport", "192.168.50.1/32[4]"),
    ("ipip_ipsec_tunnel", "ipip", "tunnel", "192.168.50.1/32[4]"),
    ("ipip_ipsec_tunnel_loopback", "ipip", "tunnel", "192.168.1.1/32[4]"),
    ("l2tp_ipsec", "l2tp", "transport", "192.168.50.1/32[17/1701]"),
])
def test_each_scenario_expands_to_its_interface_and_selectors(name, kind, mode, local_ts):
    plan = plan_of(name)
    r0 = plan.nodes["r0"]
    assert (r0.tunnel.kind if r0.tunnel else None) == kind
    if mode is None:
        assert "/run/labkit/strongswan/swanctl.conf" not in r0.files
        assert "charon" not in [d.name for d in r0.daemons]
        return
    conf = swanctl(plan, "r0")
    assert f"mode = {mode}\n" in conf and f"local_ts = {local_ts}\n" in conf
    assert "esp_proposals = null-sha1\n" in conf  # NULL encryption: the inner stack stays decodable
    assert "local_addrs = 192.168.50.1\n" in conf and "remote_addrs = 192.168.50.2\n" in conf


def test_a_loopback_sourced_tunnel_runs_between_loopbacks_routed_over_the_underlay():
    r0 = plan_of("gre_ipsec_tunnel_loopback").nodes["r0"]
    assert (str(r0.tunnel.local), str(r0.tunnel.remote)) == ("192.168.1.1", "192.168.2.1")
    assert [str(a) for a in r0.addresses["lo"]] == ["192.168.1.1/32"]
    assert [(str(r.dst), str(r.via)) for r in r0.routes] == [("192.168.2.1/32", "192.168.50.2")]


def test_route_based_ipsec_binds_the_sa_to_the_interface_and_one_end_initiates():
    plan = plan_of("vti")
    assert plan.nodes["r0"].tunnel.if_id == 42
    assert "if_id_in = 42" in swanctl(plan, "r0") and "if_id_out = 42" in swanctl(plan, "r1")
    # r1's connection loads last, so r0 already answers when r1 initiates; r0 drops until then
    assert "start_action = start" in swanctl(plan, "r1") and "start_action = none" in swanctl(plan, "r0")


def test_policy_based_ipsec_routes_the_remote_lan_to_the_peer():
    r0 = plan_of("ipsec_tunnel").nodes["r0"]
    assert r0.tunnel is None
    assert [(str(r.dst), str(r.via)) for r in r0.routes] == [("192.168.30.0/24", "192.168.50.2")]


def test_ospf_runs_point_to_point_on_the_tunnel_with_lans_passive():
    conf = plan_of("gre").nodes["r1"].files["/run/labkit/frr/ospfd.conf"]
    assert "interface tun0\n ip ospf area 0\n ip ospf network point-to-point\n" in conf
    assert "interface eth1\n ip ospf area 0\n ip ospf passive\n" in conf


def test_the_lan_host_is_the_host_behind_each_end():
    topo = load(TOPOLOGIES / "gre")
    assert (catalogue.lan_host(topo, "r0"), catalogue.lan_host(topo, "r1")) == ("h0", "h1")


def row(name: str, overhead: int, stack: str = "IP / ESP / IP / ICMP") -> catalogue.Row:
    return catalogue.Row(name, name, stack, catalogue.INNER_LEN + overhead, catalogue.INNER_LEN, overhead,
                         "tunnel", "NULL/HMAC_SHA1_96")


def test_report_rows_keep_the_last_of_each_topology_in_seed_order(tmp_path):
    for r in (row("gre", 99), row("ipsec_tunnel", 44), row("gre", 24, "IP / GRE / IP / ICMP")):
        catalogue.record(r, tmp_path)
    rows = catalogue.load_rows(tmp_path / catalogue.RECORD)
    assert [(r.topology, r.overhead) for r in rows] == [("ipsec_tunnel", 44), ("gre", 24)]
    text = catalogue.render(rows)
    assert "encapsulation of one 100-byte IP packet" in text and "IP / GRE / IP / ICMP" in text
    assert text.splitlines()[-1].split()[-4:] == ["24", "-20", "tunnel", "(NULL/HMAC_SHA1_96)"]
    data = json.loads(catalogue.render(rows, "json"))
    assert data["baseline"] == "ipsec_tunnel" and [r["vs_classic"] for r in data["rows"]] == [0, -20]
    md, js = catalogue.write_reports(rows, tmp_path / "out")
    assert md.read_text().count("\n|") == 4 and json.loads(js.read_text()) == data
