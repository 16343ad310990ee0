"""Semantic checks of a topology's ``tunnel`` section (a point-to-point site-to-site tunnel).

The schema has already checked types and enums; here every combination that cannot work is
refused with the reason and a fix, each at its field path, all at once.
"""

from __future__ import annotations

from .model import Link, Node, Tunnel


def build_tunnel(raw: dict, nodes: dict[str, Node], links: list[Link], col) -> Tunnel | None:
    """The :class:`Tunnel` of ``raw`` (the ``tunnel`` mapping), or None after recording problems in ``col``."""
    from .load import _addr, _net

    where = ("tunnel",)
    between = tuple(raw["between"])
    ok = True
    for i, name in enumerate(between):
        if name not in nodes:
            col.add(where + ("between", i), f"unknown node {name!r}", f"nodes defined in this file: {', '.join(sorted(nodes))}")
            ok = False
        elif nodes[name].role != "router":
            col.add(where + ("between", i), f"{name!r} has role {nodes[name].role!r}; a tunnel ends on a router",
                    f"set nodes.{name}.role: router")
            ok = False
    if ok and between[0] == between[1]:
        col.add(where + ("between",), f"a tunnel needs two different routers, got {between[0]!r} twice")
        ok = False
    underlay = next((l for l in links if {ep.node for ep in l.endpoints} == set(between)), None) if ok else None
    if ok and underlay is None:
        col.add(where + ("between",), f"no link joins {between[0]!r} and {between[1]!r}: the tunnel needs an underlay",
                f"add a link with endpoints [{between[0]}:eth0, {between[1]}:eth0]")
    encap, ipsec = raw["encap"], raw.get("ipsec", "none")
    source = raw.get("source", "underlay")
    network = _net(raw["network"], col, where + ("network",)) if "network" in raw else None
    routing = raw.get("routing", "static" if encap == "none" else "ospf")
    if encap in ("none", "xfrm") and ipsec != "tunnel":
        col.add(where + ("ipsec",), f"encap {encap} is IPsec itself: it needs ipsec: tunnel, not {ipsec}",
                "set tunnel.ipsec: tunnel")
    if encap == "l2tp" and ipsec == "tunnel":
        col.add(where + ("ipsec",), "L2TP over IPsec uses ESP transport mode", "set tunnel.ipsec: transport (or none)")
    if encap == "none":
        if network is not None:
            col.add(where + ("network",), "policy-based IPsec has no tunnel interface to address", "remove tunnel.network")
        if routing != "static":
            col.add(where + ("routing",), "policy-based IPsec has no interface to run OSPF over",
                    "set tunnel.routing: static, or use encap: xfrm (route-based) for OSPF")
    elif network is None and "network" not in raw:
        col.add(where, f"a {encap} tunnel needs inner addresses", "add tunnel.network, e.g. 192.168.111.0/30")
    elif network is not None and network.num_addresses < 4:
        col.add(where + ("network",), f"{network} has no room for two tunnel addresses", "use a /30 or larger")
    loopbacks = None
    if source == "loopback":
        if encap not in ("gre", "ipip"):
            col.add(where + ("source",), f"a loopback-sourced tunnel is a GRE or IPIP variant, not {encap}")
        if ipsec != "tunnel":
            col.add(where + ("ipsec",), "a tunnel between loopback (private) addresses must be carried by ESP tunnel "
                    f"mode: transport mode keeps the loopbacks as outer addresses ({ipsec})", "set tunnel.ipsec: tunnel")
        if "loopbacks" not in raw:
            col.add(where, "source: loopback needs the routers' loopback addresses", "add tunnel.loopbacks: [A, B]")
        else:
            found = [_addr(a, col, where + ("loopbacks", i)) for i, a in enumerate(raw["loopbacks"])]
            if all(found):
                loopbacks = (found[0], found[1])
    elif "loopbacks" in raw:
        col.add(where + ("loopbacks",), "loopbacks are used with source: loopback only", "set tunnel.source: loopback")
    if not ok or underlay is None or (encap != "none" and network is None):
        return None
    props = raw.get("ipsec_proposals", {})
    default = Tunnel(between, underlay, encap, ipsec)
    return Tunnel(between, underlay, encap, ipsec, network=network, source=source, loopbacks=loopbacks,
                  routing=routing, ifname=raw.get("ifname", default.ifname),
                  ike_proposals=tuple(props.get("ike", default.ike_proposals)),
                  esp_proposals=tuple(props.get("esp", default.esp_proposals)), psk=raw.get("psk"))


def check_lans(tunnel: Tunnel, topo, col) -> None:
    """Each end needs a LAN besides the underlay (the catalogue's traffic runs LAN to LAN)."""
    for node in tunnel.between:
        if not topo.lans(node):
            col.add(("tunnel", "between", tunnel.index(node)), f"router {node!r} has no LAN besides the underlay",
                    f"link a host to {node}")

