"""Expand a topology: roles become interfaces, addresses, mGRE, sysctls, firewall and daemons.

One function per concern; :func:`expand` assembles them into a :class:`LabPlan`.
"""

from __future__ import annotations

import ipaddress
import secrets

from ..model import Node, Topology
from . import frr, strongswan
from .plan import DaemonPlan, GrePlan, LabPlan, NodePlan, RoutePlan, TunnelPlan, WirePlan
from .tunnel import expand_tunnel

__all__ = ["expand", "LabPlan", "NodePlan", "DaemonPlan", "GrePlan", "RoutePlan", "TunnelPlan", "WirePlan"]

ROUTER_SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
    "net.ipv4.conf.all.send_redirects": "0",
}


def nflog_rule(tunnel_if: str, group: int = frr.NFLOG_GROUP) -> tuple[str, ...]:
    """The hub's rule: log (rate-limited) packets forwarded tunnel→tunnel, so nhrpd redirects."""
    return ("iptables", "-w", "-A", "FORWARD", "-i", tunnel_if, "-o", tunnel_if,
            "-m", "hashlimit", "--hashlimit-upto", "4/minute", "--hashlimit-burst", "1",
            "--hashlimit-mode", "srcip,dstip", "--hashlimit-srcmask", "24", "--hashlimit-dstmask", "24",
            "--hashlimit-name", "loglimit-0", "-j", "NFLOG", "--nflog-group", str(group), "--nflog-range", "128")


def multicast_rules(tunnel_if: str, group: int = frr.MCAST_NFLOG_GROUP) -> list[tuple[str, ...]]:
    """Phase 1: link-local multicast leaving the mGRE goes to nhrpd, which sends a copy to each NBMA
    address it maps multicast to (the hub: every registered spoke; a spoke: the hub), and is
    dropped by the kernel, which has no NBMA address for it."""
    base = ("iptables", "-w", "-A", "OUTPUT", "-d", "224.0.0.0/24", "-o", tunnel_if)
    return [base + ("-j", "NFLOG", "--nflog-group", str(group)), base + ("-j", "DROP")]


def masquerade_rule(outside: str) -> tuple[str, ...]:
    """A NAT box: source NAT of everything leaving ``outside`` (conntrack keeps IKE/NAT-T mappings)."""
    return ("iptables", "-w", "-t", "nat", "-A", "POSTROUTING", "-o", outside, "-j", "MASQUERADE")


def segment_key(name: str) -> str:
    """Segments live in the runtime beside nodes; this key keeps their names apart."""
    return f"@{name}"


def wires(topo: Topology) -> list[WirePlan]:
    out = [WirePlan(l.endpoints[0].node, l.endpoints[0].ifname, l.endpoints[1].node, l.endpoints[1].ifname)
           for l in topo.links]
    for seg in topo.segments:
        for i, ep in enumerate(seg.members):
            out.append(WirePlan(ep.node, ep.ifname, segment_key(seg.name), f"p{i}", segment=seg.name))
    return out


def _gateway_for_host(topo: Topology, node: Node) -> ipaddress.IPv4Address | None:
    """A host's default gateway: the router at the other end of its first link."""
    for link in topo.links:
        a, b = link.endpoints
        for mine, peer in ((a, b), (b, a)):
            if mine.node == node.name and topo.nodes[peer.node].is_router:
                return peer.address.ip
    for seg in topo.segments:
        if any(ep.node == node.name for ep in seg.members):
            for ep in seg.members:
                if topo.nodes[ep.node].is_router:
                    return ep.address.ip
    return None


def _kernel(topo: Topology, node: Node, plan: NodePlan) -> None:
    for ep in topo.endpoints(node.name):
        plan.addresses.setdefault(ep.ifname, []).append(ep.address)
    if node.is_router:
        plan.sysctls.update(ROUTER_SYSCTLS)
    plan.sysctls.update(dict(node.sysctls))
    routes = [RoutePlan(r.to, r.via) for r in node.routes]
    if not routes and node.role == "host":
        gw = _gateway_for_host(topo, node)
        if gw is not None:
            routes.append(RoutePlan(ipaddress.IPv4Network("0.0.0.0/0"), gw))
    plan.routes.extend(routes)


def _dmvpn(topo: Topology, node: Node, plan: NodePlan, psk: str | None) -> None:
    dm = topo.dmvpn
    assert dm is not None and node.tunnel_address is not None
    under = topo.nbma(node.name)
    hub_nbma = topo.nbma(topo.hubs()[0].name).address.ip
    plan.gre = GrePlan(dm.ifname, dm.key, under.address.ip, under.ifname,
                       ipaddress.IPv4Interface(f"{node.tunnel_address}/32"), multicast=dm.igp)
    plan.sysctls[f"net.ipv4.conf.{dm.ifname}.rp_filter"] = "0"
    lans = [str(net) for net in topo.lans(node.name)]
    lan_ifs = [ep.ifname for ep in topo.endpoints(node.name) if ep.ifname != under.ifname]
    behind = topo.nat_of(node.name)
    if behind and not node.routes:  # a spoke behind a NAT box reaches the hub through it
        nat_inside = next(t for m, t in topo.neighbours(node.name) if t.node == behind[1].name)
        plan.routes.append(RoutePlan(ipaddress.IPv4Network("0.0.0.0/0"), nat_inside.address.ip))
    if node.role == "hub" and not dm.igp:
        plan.routes.append(RoutePlan(dm.network, blackhole=True))  # lets BGP announce the tunnel net
    if node.role == "hub" and dm.phase > 1:
        plan.firewall.append(nflog_rule(dm.ifname))
    if dm.igp:
        plan.firewall.extend(multicast_rules(dm.ifname))
    files, daemons = frr.render(topo, node, str(hub_nbma), under.ifname, lans, lan_ifs)
    plan.files.update(files)
    plan.daemons.extend(daemons)
    if dm.ipsec.enabled:
        assert psk is not None
        files, daemons, plan.swanctl = strongswan.render(node, under.address.ip, dm.ipsec, psk)
        plan.files.update(files)
        plan.daemons.extend(daemons)


def expand(topo: Topology, psk: str | None = None) -> LabPlan:
    """Turn a validated topology into a :class:`LabPlan`.

    Args:
        topo: the validated topology.
        psk: the IPsec pre-shared key; the topology's, else this one, else a fresh random key.
    """
    dm, tun = topo.dmvpn, topo.tunnel
    if dm and dm.ipsec.enabled:
        psk = dm.ipsec.psk or psk or secrets.token_urlsafe(24)
    elif tun and tun.ipsec != "none":
        psk = tun.psk or psk or secrets.token_urlsafe(24)
    nodes: dict[str, NodePlan] = {}
    for node in topo.nodes.values():
        plan = NodePlan(node.name, node.role)
        _kernel(topo, node, plan)
        if node.in_dmvpn:
            _dmvpn(topo, node, plan, psk)
        elif tun and node.name in tun.between:
            expand_tunnel(topo, node, plan, psk)
        elif node.role == "nat":
            plan.firewall.append(masquerade_rule(topo.outside(node.name).ifname))
        elif node.role == "router":
            files, daemons = frr.render_router(node)
            plan.files.update(files)
            plan.daemons.extend(daemons)
        nodes[node.name] = plan
    return LabPlan(topo.name, nodes, [s.name for s in topo.segments], wires(topo), psk)
