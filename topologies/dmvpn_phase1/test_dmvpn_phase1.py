"""DMVPN phase 1 with OSPF on real FRR (nhrpd + ospfd), strongSwan and the kernel's GRE.

Phase 1 is hub-and-spoke: NHRP only registers spokes (the hub learns their NBMA addresses
dynamically); no spoke ever resolves another, and routes lead through the hub. IOS builds the
spokes' tunnels as point-to-point GRE; FRR's nhrpd cannot be a client on one (it reads NHRP
only with the sender's NBMA address, which a point-to-point GRE device does not report), so
labkit's spokes keep mGRE without ``ip nhrp shortcut``, and the hub does not redirect: the
same behaviour, asserted below. The hub's kernel cannot send multicast
out of an mGRE tunnel (it has no NBMA address for 224.0.0.5), so an NFLOG rule hands it to
nhrpd, which sends one copy to every registered spoke (FRR: ``ip nhrp map multicast dynamic``
+ ``nhrp multicast-nflog-group``; IOS: ``ip nhrp map multicast dynamic`` alone).

OSPF runs point-to-multipoint. The broadcast network type with the hub as DR (priority 2,
spokes 0) and EIGRP cannot run over FRR's nhrpd; the last two tests show why on the live daemons.
"""

import ipaddress

import pytest

from labkit import checks
from labkit.wait import wait_until

pytestmark = pytest.mark.runtimes("netns", reason="runtime-independent behaviour; CI runs docker on dmvpn_phase2")

HUB, S1, S2, H0, H1, H2 = "hub", "spoke1", "spoke2", "h0", "h1", "h2"
TUNNEL = {HUB: "172.16.0.1", S1: "172.16.0.2", S2: "172.16.0.3"}
LAN0, LAN2 = ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("10.0.2.0/24")


def test_spokes_never_resolve_and_the_hub_never_redirects(lab_node):
    assert "ip nhrp shortcut" not in lab_node(S1).running_config("nhrpd")
    hub = lab_node(HUB).running_config("nhrpd")
    assert "ip nhrp redirect" not in hub and "ip nhrp map multicast dynamic" in hub
    assert lab_node(HUB).gre().multicast and lab_node(S1).gre().multicast


def test_spokes_register_and_hub_learns_nbma_dynamically(lab):
    checks.spokes_registered(lab)
    checks.hub_spoke_ipsec(lab)


def test_ospf_adjacencies_hub_and_spoke(lab):
    checks.igp_adjacencies(lab)


def test_hub_replicates_ospf_multicast_to_each_spoke(lab_host, lab_node):
    """The hub's OSPF multicast is logged to nhrpd and dropped by the kernel; spokes still hear it."""
    out = lab_host(HUB).run("iptables -w -L OUTPUT -v -x -n").stdout
    counters = {line.split()[2]: int(line.split()[0]) for line in out.splitlines()[2:] if "224.0.0.0/24" in line}
    assert counters.get("NFLOG", 0) > 0 and counters.get("DROP", 0) > 0, out
    for spoke in (S1, S2):  # the hub's hellos reach each spoke only through nhrpd's copies
        assert [str(n.address) for n in lab_node(spoke).ospf_neighbours()] == [TUNNEL[HUB]]


def test_spokes_learn_remote_lans_via_the_hub(lab_node):
    routes = {r.dst: r for r in lab_node(S1).routes()}
    for lan in (LAN0, LAN2):
        assert routes[lan].proto == "ospf" and str(routes[lan].gateway) == TUNNEL[HUB] and routes[lan].dev == "gre1", \
            routes.get(lan)


def test_spoke_to_spoke_always_crosses_the_hub(lab):
    path = lab.path(H1, H2)
    assert path.reached and path.nodes == (S1, HUB, S2, H2), str(path)
    checks.hub_and_spoke_only(lab, S1, S2)


def test_no_cleartext_gre(lab):
    checks.no_cleartext_gre(lab, H1, H2)


def test_ospf_broadcast_cannot_run_over_nhrpd_in_frr_84(lab, lab_node):
    """The limit behind point-to-multipoint, shown on the live daemons, then undone.

    nhrpd needs a host (/32) tunnel address; on a broadcast network ospfd accepts hellos only
    from its interface's subnet, which a /32 holds nothing of. Switched to broadcast, the hub
    drops spoke1's hellos ("network address is not same") and the adjacency dies.
    """
    hub, spoke = lab_node(HUB), lab_node(S1)
    for node, prio in ((hub, 2), (spoke, 0)):
        node.configure("ospfd", "interface gre1", "ip ospf network broadcast", f"ip ospf priority {prio}")
    try:
        wait_until(lambda: f"network address is not same [{TUNNEL[S1]}]" in hub.log("ospfd"), 30,
                   "the hub's ospfd to drop spoke1's broadcast hellos", state=lambda: hub.log("ospfd")[-600:])
        wait_until(lambda: not any(str(n.address) == TUNNEL[S1] and n.full for n in hub.ospf_neighbours()), 30,
                   "the hub-spoke1 adjacency to die on broadcast", state=hub.ospf_neighbours)
    finally:
        for node in (hub, spoke):
            node.configure("ospfd", "interface gre1", "ip ospf network point-to-multipoint", "no ip ospf priority")
    wait_until(lambda: any(str(n.address) == TUNNEL[S1] and n.full for n in hub.ospf_neighbours()), 60,
               "hub-spoke1 adjacency back on point-to-multipoint", state=hub.ospf_neighbours)


EIGRP = """router eigrp 100
 eigrp router-id {rid}
 network 172.16.0.0/24
"""


def test_eigrp_cannot_peer_over_nhrpd(lab, lab_node):
    """The limit behind refusing EIGRP: eigrpd on the live tunnel drops every neighbour's hello.

    nhrpd needs /32 tunnel addresses; eigrpd accepts packets only from its interface's subnet.
    (Split horizon, which IOS turns off on the hub, cannot be turned off in FRR's eigrpd either.)
    """
    hub, spoke = lab_node(HUB), lab_node(S1)
    started = [lab.faults.start_daemon(n, "eigrpd", EIGRP.format(rid=TUNNEL[n])) for n in (HUB, S1)]
    try:
        for node, peer in ((hub, S1), (spoke, HUB)):
            wait_until(lambda node=node, peer=peer: f"network address is not same [{TUNNEL[peer]}]" in node.log("eigrpd"),
                       30, f"{node.name}'s eigrpd to drop {peer}'s hellos", state=lambda node=node: node.log("eigrpd")[-600:])
            assert node.eigrp_neighbours() == [], node.vty("eigrpd", "show ip eigrp neighbors")
    finally:
        for undo in started:
            undo.undo()
