"""Expand a point-to-point site-to-site tunnel (seed 000's catalogue) onto its two routers.

Per end: the tunnel interface (gre, ipip, xfrm or l2tp), a loopback address and the route to the
peer's loopback when the tunnel is loopback-sourced, OSPF over the tunnel or static routes to
the remote LANs, and a strongSwan connection whose selectors say what ESP protects:

=================  ===========  ===========================================
encap              ESP mode     selectors (local <-> remote)
=================  ===========  ===========================================
none               tunnel       LAN <-> remote LAN (policy-based)
xfrm               tunnel       0.0.0.0/0 <-> 0.0.0.0/0, on the xfrm interface's if_id
gre / ipip         transport    outer address [47 / 4] <-> peer's
gre / ipip         tunnel       the same selectors, ESP tunnel mode (loopbacks when loopback-sourced)
l2tp               transport    outer address [udp/1701] <-> peer's
=================  ===========  ===========================================
"""

from __future__ import annotations

import ipaddress

from ..model import Node, Topology
from . import frr, strongswan
from .plan import NodePlan, RoutePlan, TunnelPlan

PROTO = {"gre": "47", "ipip": "4", "l2tp": "17/1701"}  # numbers: no /etc/protocols needed in a node
L2TP_PORT = 1701
XFRM_IF_ID = 42


def selectors(topo: Topology, node: str) -> tuple[str, str]:
    t = topo.tunnel
    assert t is not None
    peer = t.peer(node)
    if t.encap == "none":
        return ",".join(map(str, topo.lans(node))), ",".join(map(str, topo.lans(peer)))
    if t.encap == "xfrm":
        return "0.0.0.0/0", "0.0.0.0/0"
    proto = PROTO[t.encap]
    return f"{t.outer_address(node)}/32[{proto}]", f"{t.outer_address(peer)}/32[{proto}]"


def expand_tunnel(topo: Topology, node: Node, plan: NodePlan, psk: str | None) -> None:
    t = topo.tunnel
    assert t is not None
    i, peer = t.index(node.name), t.peer(node.name)
    if t.loopbacks:
        plan.addresses.setdefault("lo", []).append(ipaddress.IPv4Interface(f"{t.loopbacks[i]}/32"))
        plan.routes.append(RoutePlan(ipaddress.IPv4Network(f"{t.loopbacks[1 - i]}/32"), t.underlay_address(peer)))
    if t.encap != "none":
        ids = (1000 + i, 1000 + 1 - i, 10 + i, 10 + 1 - i)
        plan.tunnel = TunnelPlan(t.encap, t.ifname, t.outer_address(node.name), t.outer_address(peer),
                                 t.underlay_ifname(node.name), t.inner_address(node.name), if_id=XFRM_IF_ID, l2tp=ids)
    if t.routing == "static":
        via = t.inner_address(peer).ip if t.encap != "none" else t.underlay_address(peer)
        plan.routes += [RoutePlan(net, via) for net in topo.lans(peer)]
    under = t.underlay_ifname(node.name)
    lan_ifs = [ep.ifname for ep in topo.endpoints(node.name) if ep.ifname != under]
    files, daemons = frr.render_tunnel_router(node, t.ifname if t.encap != "none" else None, lan_ifs,
                                              str(t.underlay_address(node.name)), ospf=t.routing == "ospf")
    plan.files.update(files)
    plan.daemons.extend(daemons)
    if t.ipsec == "none":
        return
    assert psk is not None
    local_ts, remote_ts = selectors(topo, node.name)
    # route-based: one end initiates as soon as its connection is loaded, the other answers
    # (packets it routes into the xfrm interface before the SA exists are dropped, never sent in
    # clear). Connections load node by node in file order, so the initiator is the end loaded
    # last: its peer already knows the connection (else: NO_PROPOSAL_CHOSEN, and no retry).
    last = max(t.between, key=list(topo.nodes).index)
    start = ("start" if node.name == last else "none") if t.encap == "xfrm" else "trap"
    conf = strongswan.site_conf(node, t.underlay_address(node.name), t.underlay_address(peer), t.ipsec,
                                local_ts, remote_ts, t.ike_proposals, t.esp_proposals, psk, start=start,
                                if_id=XFRM_IF_ID if t.encap == "xfrm" else None)
    files, daemons, plan.swanctl = strongswan.render(node, t.underlay_address(node.name), None, psk, conf=conf)
    plan.files.update(files)
    plan.daemons.extend(daemons)
