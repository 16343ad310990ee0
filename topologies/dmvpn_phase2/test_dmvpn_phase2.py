"""DMVPN phase 2 on real FRR nhrpd + BGP and strongSwan, asserted end to end.

The tests run in file order against one lab (module scope): registration and hub-spoke IPsec
first, then the shortcut's lifecycle: absent, path via the hub, traffic, present, path direct,
and the wire carrying ESP only.
"""

import ipaddress
from pathlib import Path

import pytest

from labkit import catalogue, checks, report
from labkit.expand.strongswan import SWAN_DIR

HUB, S1, S2, H1, H2 = "hub", "spoke1", "spoke2", "h1", "h2"
NBMA = {HUB: "192.0.2.1", S1: "192.0.2.2", S2: "192.0.2.3"}
TUNNEL = {HUB: "172.16.0.1", S1: "172.16.0.2", S2: "172.16.0.3"}


def test_spokes_registered_at_hub(lab_node):
    """The hub's NHRP cache maps each spoke's tunnel address to its own NBMA address."""
    cache = {str(e.protocol): e for e in lab_node(HUB).nhrp_cache() if e.type == "dynamic"}
    for spoke in (S1, S2):
        assert TUNNEL[spoke] in cache, f"{spoke} not registered; hub cache: {cache}"
        assert str(cache[TUNNEL[spoke]].nbma) == NBMA[spoke]


def test_each_spoke_uses_hub_as_nhs(lab_node):
    for spoke in (S1, S2):
        nhs = lab_node(spoke).nhrp_nhs()
        assert [(str(n.protocol), str(n.nbma)) for n in nhs] == [(TUNNEL[HUB], NBMA[HUB])]


def test_bgp_learns_remote_lans_with_next_hop_unchanged(lab_node):
    """Phase 2: the hub reflects spoke routes without rewriting the next hop."""
    peers = lab_node(HUB).bgp_peers()
    assert peers == {TUNNEL[S1]: "Established", TUNNEL[S2]: "Established"}
    rib = lab_node(S1).vty_json("bgpd", "show bgp ipv4 unicast 10.0.2.0/24 json")
    next_hops = {nh["ip"] for path in rib["paths"] for nh in path["nexthops"]}
    assert next_hops == {TUNNEL[S2]}


def test_hub_spoke_ipsec_sas_installed(lab):
    """Each spoke and the hub: IKE SA ESTABLISHED, CHILD SA INSTALLED, ESP transport, GRE selectors."""
    checks.hub_spoke_ipsec(lab)
    ike, child = checks.transport_gre_sa(lab, S1, HUB)
    assert (str(ike.local_host), str(ike.remote_host)) == (NBMA[S1], NBMA[HUB])
    assert (child.protocol, child.mode) == ("ESP", "TRANSPORT")
    assert child.local_ts == (f"{NBMA[S1]}/32[gre]",) and child.remote_ts == (f"{NBMA[HUB]}/32[gre]",)


def test_hub_has_nflog_redirect_rule(lab_host):
    """The hub logs tunnel-to-tunnel forwarding to NFLOG group 1, which drives NHRP redirects."""
    rules = lab_host(HUB).run("iptables -S FORWARD").stdout
    assert "-i gre1 -o gre1" in rules and "--nflog-group 1" in rules


def test_no_shortcut_before_spoke_to_spoke_traffic(lab):
    checks.no_shortcut(lab, S1, S2)
    assert not any(str(s.remote_host) == NBMA[S2] for s in lab.node(S1).ike_sas())


def test_path_crosses_hub_before_shortcut(lab):
    path = lab.path(H1, H2)
    assert path.reached, str(path)
    assert path.nodes == (S1, HUB, S2, H2), str(path)


def test_shortcut_and_spoke_to_spoke_sa_after_traffic(lab):
    checks.shortcut_established(lab, S1, S2)
    shortcuts = lab.node(S1).nhrp_shortcuts()
    assert any(s.prefix == ipaddress.ip_network("10.0.2.0/24") and str(s.via) == TUNNEL[S2] for s in shortcuts), shortcuts
    ike, child = checks.transport_gre_sa(lab, S1, S2)
    assert str(ike.remote_host) == NBMA[S2] and child.state == "INSTALLED"


def test_path_goes_direct_after_shortcut(lab):
    checks.path_direct(lab, H1, H2, avoid=HUB)
    path = lab.path(H1, H2)
    assert path.reached and HUB not in path.nodes and path.nodes[-1] == H2, str(path)


@pytest.mark.parametrize("src,dst", [(H1, H2), ("h0", H1)])
def test_no_cleartext_gre_on_underlay(lab, src, dst):
    """With IPsec on, the underlay carries ESP and never a cleartext GRE packet."""
    with lab.capture("underlay") as cap:
        for _ in range(3):
            assert lab.path(src, dst).reached
    counts = cap.counts()
    assert counts["gre"] == 0, dict(counts)
    assert counts["esp"] > 0, dict(counts)


def test_psk_is_in_swanctl_conf_and_nowhere_else(lab):
    """The generated PSK (a CSPRNG draw) reaches each charon, but no log, report or repr shows it."""
    psk = lab.plan.psk
    assert psk and len(psk) >= 32
    assert f'secret = "{psk}"' in lab.runtime.read_file(HUB, f"{SWAN_DIR}/swanctl.conf")
    logs = {}
    for name in lab.topology.nodes:
        for f in Path(lab.runtime.node_path(name, "/run/labkit/log")).rglob("*"):
            if f.is_file():
                logs[f"{name}:{f.name}"] = f.read_text(errors="replace")
    # the charons did authenticate with it (the logs are not empty, so the search means something)
    assert "pre-shared key" in logs[f"{HUB}:charon.log"]
    assert [where for where, text in logs.items() if psk in text] == []
    for as_json in (False, True):
        assert psk not in report.render(lab, [], 0.0, as_json=as_json)
    assert psk not in repr(lab.plan) + repr(lab.topology)


def test_encapsulation_on_the_wire_decrypted_with_the_kernel_keys(lab):
    """The catalogue's last row: mGRE with a key under ESP transport mode, AES-GCM opened with the SA's key."""
    row = catalogue.measure(lab)
    catalogue.record(row)
    assert row.stack == "IP / ESP / GRE / IP / ICMP", row
    assert (row.esp_mode, row.esp) == ("transport", "AES_GCM_16"), row
    # ESP header 8 + IV 8 + GRE with key 8 + padding 2 + trailer 2 + ICV 16 + outer IP 20
    assert (row.inner, row.overhead) == (catalogue.INNER_LEN, 64), row


def test_injected_packets_cross_the_tunnel_and_come_back(lab, capture):
    """Scapy from h1: a TCP SYN to a closed port and UDP probes reach h2 over the shortcut and are
    answered (RST, port unreachable); on the underlay the same exchange is ESP only."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP

    h1, h2 = str(lab.address_of(H1)), str(lab.address_of(H2))
    wire = capture("underlay", bpf="ip proto 47 or esp")
    syn = lab.inject(H1, IP(dst=h2) / TCP(sport=40100, dport=9, flags="S", seq=7), timeout=10)
    assert syn.loss == 0.0, str(syn)
    [(sent, reply)] = syn.answered
    assert sent[IP].src == h1 and reply[IP].src == h2 and reply[TCP].flags.R and reply[TCP].ack == 8
    udp = lab.inject(H1, IP(dst=h2) / UDP(sport=40101, dport=(33434, 33436)), rate=10, timeout=10)
    assert udp.loss == 0.0 and {(r[ICMP].type, r[ICMP].code) for r in udp.replies} == {(3, 3)}, str(udp)
    wire.stop()
    counts = wire.counts()
    assert counts["gre"] == 0 and counts["esp"] >= 2 * 4, dict(counts)  # 4 exchanges, both ways
