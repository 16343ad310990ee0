"""Spokes behind NAT boxes, the cases users hit: two spokes sharing one NAT, and spokes behind
different NATs. Real FRR nhrpd, strongSwan and the kernel's conntrack NAT.

spoke1 (192.168.1.2) and spoke3 (192.168.1.3) sit behind nat1 (203.0.113.2); spoke2
(192.168.2.2) behind nat2 (203.0.113.3).

The limit asserted here: ESP in transport mode protecting GRE cannot serve two spokes behind
one NAT address. Both negotiate NAT-T IKE and CHILD SAs with the hub, and both registrations
reach it, but the hub's kernel holds a single GRE policy towards 203.0.113.2, so everything the
hub sends there is encrypted for one of them. The other never hears the hub: its NHRP
registration replies, BGP and traffic are lost. Which spoke wins is the order of negotiation.
IOS ties each SA to its NHRP peer and serves both; the Linux fix is one public address per
spoke (or tunnel-mode IPsec with distinct inner addresses, which DMVPN's GRE does not have).
"""

import pytest

from labkit import checks

pytestmark = pytest.mark.runtimes("netns", reason="runtime-independent behaviour; CI runs docker on dmvpn_phase2")

HUB, S1, S2, S3 = "hub", "spoke1", "spoke2", "spoke3"
HOSTS = {S1: "h1", S2: "h2", S3: "h3"}
TUNNEL = {HUB: "172.16.0.1", S1: "172.16.0.2", S2: "172.16.0.3", S3: "172.16.0.4"}
PRIVATE = {S1: "192.168.1.2", S2: "192.168.2.2", S3: "192.168.1.3"}
PUBLIC = {S1: "203.0.113.2", S2: "203.0.113.3", S3: "203.0.113.2"}


def reaches_the_hub_lan(lab, spoke: str, tries: int = 3) -> bool:
    return any(lab.ping(HOSTS[spoke], "h0", timeout=1) for _ in range(tries))


def served(lab) -> list[str]:
    """The spokes behind nat1 whose hosts reach the hub's LAN."""
    return [s for s in (S1, S3) if reaches_the_hub_lan(lab, s)]


def test_every_spoke_registers_through_its_nat(lab_node):
    """All three registrations reach the hub, each with the NAT's address against the claimed one."""
    cache = {str(e.protocol): e for e in lab_node(HUB).nhrp_cache() if e.type == "dynamic"}
    for spoke in (S1, S2, S3):
        entry = cache[TUNNEL[spoke]]
        assert (str(entry.nbma), str(entry.claimed_nbma)) == (PUBLIC[spoke], PRIVATE[spoke]), entry


def test_a_spoke_behind_its_own_nat_works(lab):
    assert any(str(n.protocol) == TUNNEL[HUB] for n in lab.node(S2).nhrp_nhs()), lab.node(S2).nhrp_nhs()
    ike, child = checks.transport_gre_sa(lab, S2, HUB)
    assert ike.nat_any and child.encap, (ike, child)
    assert lab.node(HUB).bgp_peers()[TUNNEL[S2]] == "Established"
    assert lab.ping(HOSTS[S2], "h0", timeout=2)


def test_both_spokes_behind_a_shared_nat_negotiate_ipsec(lab):
    """Both get NAT-T IKE and CHILD SAs: the hub holds two, to the same public address."""
    for spoke in (S1, S3):
        ike, child = checks.transport_gre_sa(lab, spoke, HUB)
        assert ike.nat_any and child.encap, (spoke, ike, child)
    to_nat1 = [s for s in lab.node(HUB).ike_sas() if str(s.remote_host) == PUBLIC[S1] and s.state == "ESTABLISHED"
               and any(c.state == "INSTALLED" for c in s.children)]
    assert len(to_nat1) == 2, to_nat1


def test_shared_nat_serves_only_one_spoke_in_transport_mode(lab, lab_host):
    """The limit: one GRE policy towards the NAT address, so exactly one of the two is served."""
    policies = lab_host(HUB).run(f"ip xfrm policy list dst {PUBLIC[S1]}/32 proto gre dir out").stdout
    assert policies.count("dir out") == 1, policies
    winners = served(lab)
    assert len(winners) == 1, f"expected exactly one of {S1}, {S3} to reach the hub's LAN; served: {winners}"
    (winner,) = winners
    (loser,) = {S1, S3} - {winner}
    peers = lab.node(HUB).bgp_peers()
    assert peers.get(TUNNEL[winner]) == "Established" and peers.get(TUNNEL[loser]) != "Established", peers


def test_spokes_behind_two_nats_resolve_each_other_but_ike_cannot_cross(lab, wait_until):
    """The second limit, and the one that hurts: traffic between spokes behind different NATs
    first crosses the hub; then both spokes resolve each other to the other NAT's address,
    install the shortcut, and the trap policy starts IKE towards that address, which the other
    NAT drops (no mapping for it). The shortcut wins over the hub route, so traffic between the
    two LANs is lost until the shortcut expires. (IOS has the same NAT problem; it is why
    deployments keep NATed spokes hub-and-spoke or give them a static public address.)
    Runs last: it leaves the two spokes without a path until the holdtime ends.
    """
    (winner,) = served(lab)
    src, dst = HOSTS[winner], HOSTS[S2]
    path = lab.path(src, dst)
    assert path.reached and path.crosses(HUB), str(path)

    def resolved() -> bool:
        lab.ping(src, dst, timeout=0.5)
        return any(str(e.protocol) == TUNNEL[S2] and str(e.nbma) == PUBLIC[S2] for e in lab.node(winner).nhrp_cache())

    wait_until(resolved, 60, f"{winner} to resolve {S2} to nat2's address {PUBLIC[S2]}",
               state=lambda: lab.node(winner).nhrp_cache())
    wait_until(lambda: lab.node(winner).nhrp_shortcuts(), 30, f"{winner} to install the shortcut to {S2}")

    def towards_nat2():
        return [s for s in lab.node(winner).ike_sas() if str(s.remote_host) == PUBLIC[S2]]

    def attempting():
        lab.ping(src, dst, timeout=0.5)  # keep packets on the shortcut: each one hits the trap policy
        return towards_nat2()

    wait_until(attempting, 30, f"{winner} to start IKE towards {PUBLIC[S2]}")
    through = sum(lab.ping(src, dst, timeout=1) for _ in range(10))
    assert through == 0, f"{through} of 10 pings {src}->{dst} got through; expected the shortcut to black-hole them"
    assert not [s for s in towards_nat2() if s.state == "ESTABLISHED"], towards_nat2()
