"""A spoke behind a NAT box: NAT-T, NBMA against claimed NBMA, and the shortcut through the NAT.

spoke1 (192.168.1.2) reaches the internet through nat1 (MASQUERADE to 203.0.113.2); the hub and
spoke2 are on the internet segment. Everything here runs on real FRR nhrpd, strongSwan and the
kernel's conntrack NAT.
"""

import pytest

from labkit import checks

# Passed on docker in a sandbox run; CI keeps the docker runtime to dmvpn_phase2 for its time budget.
pytestmark = pytest.mark.runtimes("netns", reason="runtime-independent behaviour; CI runs docker on dmvpn_phase2")

HUB, NAT, S1, S2, H0, H1, H2 = "hub", "nat1", "spoke1", "spoke2", "h0", "h1", "h2"
PRIVATE_S1, PUBLIC_S1 = "192.168.1.2", "203.0.113.2"
TUNNEL = {HUB: "172.16.0.1", S1: "172.16.0.2", S2: "172.16.0.3"}


def test_hub_cache_shows_nat_address_against_claimed_nbma(lab_node):
    """The hub maps spoke1's tunnel address to the NAT's public address, and keeps the private one it claimed."""
    cache = {str(e.protocol): e for e in lab_node(HUB).nhrp_cache() if e.type == "dynamic"}
    entry = cache[TUNNEL[S1]]
    assert (str(entry.nbma), str(entry.claimed_nbma)) == (PUBLIC_S1, PRIVATE_S1), entry
    direct = cache[TUNNEL[S2]]
    assert str(direct.nbma) == "203.0.113.3" and direct.claimed_nbma in (None, direct.nbma), direct


def test_registration_and_ipsec_through_the_nat(lab):
    checks.spokes_registered(lab)
    checks.hub_spoke_ipsec(lab)


def test_nat_t_carries_esp_for_the_natted_spoke(lab):
    """spoke1's SA is UDP-encapsulated (NAT-T, port 4500); spoke2's is plain ESP."""
    ike, child = checks.transport_gre_sa(lab, S1, HUB)
    assert ike.nat_any and child.encap, (ike, child)
    ike2, child2 = checks.transport_gre_sa(lab, S2, HUB)
    assert not child2.encap, child2
    with lab.capture("internet") as cap:
        for _ in range(3):
            assert lab.path(H1, H0).reached
    counts = cap.counts()
    assert counts["nat-t"] > 0 and counts["gre"] == 0, dict(counts)


def test_nat_box_translates_and_keeps_state(lab_host):
    """nat1 masquerades spoke1 and holds the conntrack entries of its IKE/NAT-T flow."""
    rules = lab_host(NAT).run("iptables -t nat -S POSTROUTING").stdout
    assert "-o eth0 -j MASQUERADE" in rules
    assert lab_host(NAT).sysctl("net.ipv4.ip_forward") == 1


def test_shortcut_from_the_natted_spoke(lab):
    """spoke1 sends first: it resolves spoke2, initiates IKE through its NAT, and the path goes direct."""
    checks.shortcut_established(lab, S1, S2)
    ike, child = checks.transport_gre_sa(lab, S1, S2)
    assert child.encap, child
    checks.path_direct(lab, H1, H2, avoid=HUB)
