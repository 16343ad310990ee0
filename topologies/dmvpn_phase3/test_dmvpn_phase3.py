"""DMVPN phase 3 on real FRR nhrpd + BGP and strongSwan: summary from the hub, NHRP shortcut routes.

The difference from phase 2 lives in the spokes' routing tables. Phase 2: a spoke learns the
other spoke's LAN from BGP with the other spoke as next hop. Phase 3: a spoke learns only the
hub's summary; spoke-to-spoke traffic first crosses the hub, whose redirect (NHRP Traffic
Indication) makes the spoke resolve the destination and install an NHRP route for the remote
LAN, more specific than the summary, via the other spoke.

FRR differs from Cisco's IOS here: the hub redirect is ``ip nhrp redirect`` plus an NFLOG rule
(IOS: ``ip nhrp redirect`` alone), and the shortcut route is a kernel route of protocol
``nhrp`` installed by nhrpd through zebra (IOS: an NHRP route shown with ``%`` or ``H``).
"""

import ipaddress

import pytest

from labkit import checks
from labkit.wait import holds_for, wait_until

pytestmark = pytest.mark.runtimes("netns", reason="runtime-independent behaviour; CI runs docker on dmvpn_phase2")

HUB, S1, S2, H1, H2 = "hub", "spoke1", "spoke2", "h1", "h2"
TUNNEL = {HUB: "172.16.0.1", S1: "172.16.0.2", S2: "172.16.0.3"}
SUMMARY = ipaddress.ip_network("10.0.0.0/22")
LAN2 = ipaddress.ip_network("10.0.2.0/24")


def routes_by_dst(node):
    return {r.dst: r for r in node.routes()}


def test_spokes_registered_with_ipsec(lab):
    checks.spokes_registered(lab)
    checks.hub_spoke_ipsec(lab)


def test_hub_learns_every_lan_and_advertises_only_the_summary(lab_node):
    hub = routes_by_dst(lab_node(HUB))
    assert hub[LAN2].proto == "bgp" and str(hub[LAN2].gateway) == TUNNEL[S2]
    advertised = lab_node(HUB).vty_json("bgpd", f"show bgp ipv4 unicast neighbors {TUNNEL[S1]} advertised-routes json")
    prefixes = set(advertised["advertisedRoutes"])
    assert str(SUMMARY) in prefixes
    assert not {"10.0.0.0/24", "10.0.2.0/24"} & prefixes, prefixes


def test_spoke_has_the_summary_via_the_hub_and_no_remote_lan(lab, lab_node):
    """The routing-table difference from phase 2: no BGP route to 10.0.2.0/24 on spoke1."""
    checks.summary_only(lab, S1)
    s1 = routes_by_dst(lab_node(S1))
    assert s1[SUMMARY].proto == "bgp" and str(s1[SUMMARY].gateway) == TUNNEL[HUB]
    assert LAN2 not in s1, s1.get(LAN2)


def test_no_shortcut_and_path_via_hub_before_traffic(lab):
    checks.no_shortcut(lab, S1, S2)
    path = lab.path(H1, H2)
    assert path.reached and path.nodes == (S1, HUB, S2, H2), str(path)


def test_redirect_installs_an_nhrp_route_more_specific_than_the_summary(lab):
    checks.shortcut_established(lab, S1, S2)
    checks.nhrp_route(lab, S1, S2)
    found = routes_by_dst(lab.node(S1))[LAN2]
    assert (found.proto, str(found.gateway), found.dev) == ("nhrp", TUNNEL[S2], "gre1"), found
    # the summary stays: the shortcut only overrides it for the resolved LAN
    assert SUMMARY in routes_by_dst(lab.node(S1))


def test_path_goes_direct_after_the_redirect(lab):
    checks.path_direct(lab, H1, H2, avoid=HUB)


HOLDTIME = 30


def nhrp_route_to_lan2(lab) -> bool:
    r = routes_by_dst(lab.node(S1)).get(LAN2)
    return r is not None and r.proto == "nhrp"


def test_remote_lan_loss_no_purge_the_shortcut_expires_at_its_holdtime(lab):
    """IOS purges a shortcut at once when the remote LAN goes; FRR 8.4 sends no NHRP Purge.

    spoke2's LAN interface goes down: spoke1 keeps its NHRP route to the lost LAN (asserted for
    5 s, where a purge would take milliseconds) until the entry's holdtime runs out.
    """
    checks.shortcut_established(lab, S1, S2)
    checks.nhrp_route(lab, S1, S2)
    with lab.faults.link_down(S2, "eth1"):
        wait_until(lambda: LAN2 not in routes_by_dst(lab.node(S2)), 10, f"{S2} to lose its LAN {LAN2}")
        holds_for(lambda: nhrp_route_to_lan2(lab), 5, f"{S1}'s NHRP route to {LAN2} (no purge)",
                  state=lambda: routes_by_dst(lab.node(S1)).get(LAN2))
        wait_until(lambda: not nhrp_route_to_lan2(lab), HOLDTIME + 15, f"{S1}'s NHRP route to {LAN2} to expire",
                   state=lambda: routes_by_dst(lab.node(S1)).get(LAN2))
    # the summary still covers the LAN; once it is back, traffic resolves a new shortcut
    assert SUMMARY in routes_by_dst(lab.node(S1))
