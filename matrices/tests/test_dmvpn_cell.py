"""What every cell of a DMVPN matrix must show, whatever its phase and whether IPsec is on.

One module serves every cell (``labkit matrix`` copies it beside each cell's topology): each
test reads the cell's topology and asserts, for that topology, exactly what its name says.
The tests run in file order on one lab; the shortcut test comes before any other traffic
between the spokes' hosts, so "no shortcut before traffic" means what it says.
"""

from __future__ import annotations

import itertools

from labkit import checks
from labkit.wait import holds_for, wait_until

TRAFFIC_TIMEOUT = 120.0  # a cold path: trap policy negotiates an SA, NHRP resolves (TCG sandbox: slow)
PHASE1_WATCH = 10.0  # seconds phase 1 traffic flows while no shortcut may appear


def hub(lab) -> str:
    return lab.topology.hubs()[0].name


def spoke_pair(lab) -> tuple[str, str, str, str]:
    """``(spoke1, its host, spoke2, its host)``: the first two spokes with a host behind each."""
    found = []
    for spoke in lab.topology.spokes():
        for mine, theirs in lab.topology.neighbours(spoke.name):
            if lab.topology.nodes[theirs.node].role == "host":
                found.append((spoke.name, theirs.node))
                break
    assert len(found) >= 2, f"the cell's topology needs two spokes with a host behind each: {found}"
    (s1, h1), (s2, h2) = found[:2]
    return s1, h1, s2, h2


def resolved(lab, spoke: str, other: str) -> bool:
    """``spoke`` holds an NHRP entry resolving ``other``'s tunnel address: a shortcut."""
    tunnel = lab.topology.nodes[other].tunnel_address
    return any(e.protocol == tunnel and e.type in ("dynamic", "cached") for e in lab.node(spoke).nhrp_cache())


def xfrm(lab, node: str) -> str:
    """The node kernel's IPsec states and policies, as ``ip xfrm`` prints them."""
    states = lab.node(node).exec("ip", "xfrm", "state").check().stdout
    policies = lab.node(node).exec("ip", "xfrm", "policy").check().stdout
    return (states + policies).strip()


def test_every_spoke_registered_at_the_hub(lab):
    checks.spokes_registered(lab)


def test_ipsec_sas_present_exactly_when_ipsec_is_on(lab):
    """On: every spoke and the hub hold an IKE SA and an ESP transport CHILD SA over GRE.
    Off: no node of the DMVPN has any IPsec state or policy in its kernel."""
    if lab.topology.dmvpn.ipsec.enabled:
        checks.hub_spoke_ipsec(lab)
    else:
        for node in [n.name for n in lab.topology.hubs() + lab.topology.spokes()]:
            assert xfrm(lab, node) == "", f"IPsec is off but {node} has IPsec state:\n{xfrm(lab, node)}"


def test_spoke_to_spoke_shortcut_after_traffic_iff_phase_2_or_3(lab):
    """Before traffic no spoke resolves another and the path crosses the hub, in every phase.
    Phase 2 and 3: traffic makes both spokes resolve each other (with an SA when IPsec is on)
    and the path goes direct. Phase 1: traffic never produces a shortcut; it keeps crossing the hub."""
    s1, h1, s2, h2 = spoke_pair(lab)
    checks.no_shortcut(lab, s1, s2)
    checks.path_via(lab, h1, h2, hub(lab))
    if lab.topology.dmvpn.phase >= 2:
        for a, b in ((s1, s2), (s2, s1)):
            wait_until(lambda a=a, b=b: lab.ping(h1, h2, timeout=0.5) and resolved(lab, a, b), TRAFFIC_TIMEOUT,
                       f"{a} to resolve {b} while {h1} pings {h2}", state=lambda a=a: lab.node(a).nhrp_cache())
        if lab.topology.dmvpn.ipsec.enabled:
            wait_until(lambda: lab.ping(h1, h2, timeout=0.5) and checks.transport_gre_sa(lab, s1, s2), TRAFFIC_TIMEOUT,
                       f"the spoke-to-spoke SA {s1}<->{s2}")
        checks.path_direct(lab, h1, h2, avoid=hub(lab), timeout=TRAFFIC_TIMEOUT)
    else:
        wait_until(lambda: lab.ping(h1, h2, timeout=0.5), TRAFFIC_TIMEOUT, f"{h1} to reach {h2} through the hub")

        def still_no_shortcut() -> bool:
            lab.ping(h1, h2, timeout=0.5)  # keep traffic flowing between the spokes' hosts
            return not resolved(lab, s1, s2) and not resolved(lab, s2, s1)

        holds_for(still_no_shortcut, PHASE1_WATCH, f"no shortcut {s1}<->{s2} while {h1} pings {h2} (phase 1)",
                  state=lambda: (lab.node(s1).nhrp_cache(), lab.node(s2).nhrp_cache()))
        checks.no_shortcut(lab, s1, s2)
        checks.path_via(lab, h1, h2, hub(lab))


def test_every_host_reaches_every_other_host(lab):
    hosts = [n.name for n in lab.topology.nodes.values() if n.role == "host"]
    assert len(hosts) >= 2, hosts
    for a, b in itertools.permutations(hosts, 2):
        wait_until(lambda a=a, b=b: lab.ping(a, b, timeout=0.5), TRAFFIC_TIMEOUT, f"{a} to reach {b}")


def test_underlay_carries_esp_only_when_ipsec_is_on_and_cleartext_gre_when_off(lab, capture):
    """Traffic between every pair of hosts, captured on the underlay (kept as a pcap with --keep-pcaps)."""
    hosts = [n.name for n in lab.topology.nodes.values() if n.role == "host"]
    cap = capture(lab.topology.dmvpn.underlay)
    for a, b in itertools.permutations(hosts, 2):
        assert lab.path(a, b, max_hops=8).reached, f"{a} does not reach {b}"
    cap.stop()
    counts = dict(cap.counts())
    protected = counts.get("esp", 0) + counts.get("nat-t", 0)
    if lab.topology.dmvpn.ipsec.enabled:
        assert counts.get("gre", 0) == 0 and protected > 0, f"IPsec is on: expected ESP only on the underlay: {counts}"
    else:
        assert counts.get("gre", 0) > 0 and protected == 0, f"IPsec is off: expected cleartext GRE only: {counts}"
