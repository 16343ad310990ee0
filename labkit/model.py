"""The topology model: pure data, no I/O.

A :class:`Topology` is what ``load`` returns after validation: every address is resolved,
every reference checked. Expansion (``labkit.expand``) turns it into per-node plans.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

ROLES = ("hub", "spoke", "host", "router")
ROUTING_PROTOCOLS = ("bgp", "ospf", "eigrp")
IGPS = ("ospf", "eigrp")  # phase 1: routing over the tunnel with multicast hellos


@dataclass(frozen=True)
class Endpoint:
    """One interface of one node, attached to a link or a segment."""

    node: str
    ifname: str
    address: ipaddress.IPv4Interface

    def __str__(self) -> str:
        return f"{self.node}:{self.ifname}"


@dataclass(frozen=True)
class Link:
    """A point-to-point veth link between two endpoints."""

    name: str
    prefix: ipaddress.IPv4Network
    endpoints: tuple[Endpoint, Endpoint]


@dataclass(frozen=True)
class Segment:
    """A multi-access network (built as a bridge) joining any number of endpoints."""

    name: str
    prefix: ipaddress.IPv4Network
    members: tuple[Endpoint, ...]


@dataclass(frozen=True)
class Route:
    """A static route: ``to`` a prefix (``0.0.0.0/0`` for default) ``via`` a gateway."""

    to: ipaddress.IPv4Network
    via: ipaddress.IPv4Address


@dataclass(frozen=True)
class Node:
    """A lab node. ``role`` decides what expansion gives it."""

    name: str
    role: str
    routes: tuple[Route, ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()
    tunnel_address: ipaddress.IPv4Address | None = None
    frr_extra: tuple[tuple[str, str], ...] = ()  # (daemon, raw config)
    swanctl_extra: str = ""
    image: str | None = None  # docker runtime only; default labkit/node:latest
    outside: str | None = None  # nat role: the masquerading interface (default: the one on the underlay)

    @property
    def is_router(self) -> bool:
        return self.role in ("hub", "spoke", "router", "nat")

    @property
    def in_dmvpn(self) -> bool:
        return self.role in ("hub", "spoke")


@dataclass(frozen=True)
class IPsec:
    """IPsec protecting the mGRE tunnel: ESP transport mode, GRE selectors, trap policies."""

    enabled: bool = True
    ike_proposals: tuple[str, ...] = ("aes256-sha256-modp2048",)
    esp_proposals: tuple[str, ...] = ("aes256gcm16",)
    psk: str | None = field(default=None, repr=False)  # None: generated per lab; a secret, never in a repr
    inactivity: int | None = None  # seconds without traffic before a CHILD_SA closes (None: never)
    mode: str = "trap"  # trap: strongSwan trap policies; vici: nhrpd drives IKE ('tunnel protection vici')


@dataclass(frozen=True)
class Dmvpn:
    """The DMVPN overlay: one mGRE tunnel network over one underlay segment."""

    underlay: str
    network: ipaddress.IPv4Network
    ifname: str = "gre1"
    key: int = 42
    network_id: int = 1
    holdtime: int = 60
    authentication: str | None = None
    phase: int = 2
    protocol: str = "bgp"
    asn: int = 65000
    ipsec: IPsec = field(default_factory=IPsec)
    summary: ipaddress.IPv4Network | None = None  # phase 3: what the hub advertises to spokes

    @property
    def igp(self) -> bool:
        """OSPF (or EIGRP) over the tunnel: multicast hellos the hub's nhrpd replicates to spokes."""
        return self.protocol in IGPS


ENCAPS = ("none", "gre", "ipip", "xfrm", "l2tp")  # a site-to-site tunnel's encapsulation (seed 000)
IPSEC_MODES = ("none", "transport", "tunnel")


@dataclass(frozen=True)
class Tunnel:
    """A point-to-point site-to-site tunnel between two routers: one row of seed 000's catalogue.

    ``encap`` none with ``ipsec`` tunnel is classic policy-based IPsec; xfrm is route-based
    IPsec (an xfrm interface); gre, ipip and l2tp (L2TPv3 over UDP, an Ethernet pseudowire) run in
    clear or protected by ESP in transport or tunnel mode. ``source: loopback`` sources the tunnel
    from a loopback address on each router, which ESP tunnel mode must then carry.
    """

    between: tuple[str, str]
    underlay: Link
    encap: str
    ipsec: str
    network: ipaddress.IPv4Network | None = None  # inner addresses: .1 on between[0], .2 on between[1]
    source: str = "underlay"
    loopbacks: tuple[ipaddress.IPv4Address, ipaddress.IPv4Address] | None = None
    routing: str = "ospf"  # ospf over the tunnel interface, or static routes to the remote LAN
    ifname: str = "tun0"
    ike_proposals: tuple[str, ...] = ("aes128-sha256-modp2048",)
    esp_proposals: tuple[str, ...] = ("null-sha1",)  # NULL encryption keeps the inner stack decodable
    psk: str | None = field(default=None, repr=False)

    def index(self, node: str) -> int:
        return self.between.index(node)

    def peer(self, node: str) -> str:
        return self.between[1 - self.index(node)]

    def underlay_address(self, node: str) -> ipaddress.IPv4Address:
        return next(ep.address.ip for ep in self.underlay.endpoints if ep.node == node)

    def underlay_ifname(self, node: str) -> str:
        return next(ep.ifname for ep in self.underlay.endpoints if ep.node == node)

    def outer_address(self, node: str) -> ipaddress.IPv4Address:
        """Where ``node``'s tunnel packets come from: its loopback, or its underlay address."""
        if self.loopbacks:
            return self.loopbacks[self.index(node)]
        return self.underlay_address(node)

    def inner_address(self, node: str) -> ipaddress.IPv4Interface | None:
        if self.network is None:
            return None
        return ipaddress.IPv4Interface(f"{list(self.network.hosts())[self.index(node)]}/{self.network.prefixlen}")

    @property
    def label(self) -> str:
        """What it is, in the seed's words: 'GRE + ESP tunnel mode (loopback-sourced)'."""
        names = {"none": "policy-based IPsec, ESP tunnel mode", "gre": "GRE", "ipip": "IPIP",
                 "xfrm": "route-based IPsec (xfrm interface)", "l2tp": "L2TPv3"}
        text = names[self.encap]
        if self.encap not in ("none", "xfrm"):
            text += f" + ESP {self.ipsec} mode" if self.ipsec != "none" else " in clear"
        return text + (" (loopback-sourced)" if self.source == "loopback" else "")


@dataclass(frozen=True)
class Topology:
    """A validated topology. ``source`` is the file it came from (for messages)."""

    name: str
    source: Path
    nodes: dict[str, Node]
    links: tuple[Link, ...] = ()
    segments: tuple[Segment, ...] = ()
    dmvpn: Dmvpn | None = None
    description: str = ""
    tunnel: Tunnel | None = None

    @property
    def directory(self) -> Path:
        return self.source.parent

    def endpoints(self, node: str | None = None) -> list[Endpoint]:
        """All endpoints (of one node, if given), links first then segments, in file order."""
        eps = [ep for link in self.links for ep in link.endpoints]
        eps += [ep for seg in self.segments for ep in seg.members]
        return [ep for ep in eps if node is None or ep.node == node]

    def neighbours(self, node: str) -> list[tuple[Endpoint, Endpoint]]:
        """``(mine, theirs)`` for every endpoint sharing a link or segment with ``node``."""
        out = []
        for link in self.links:
            a, b = link.endpoints
            out += [(a, b)] if a.node == node else [(b, a)] if b.node == node else []
        for seg in self.segments:
            mine = [ep for ep in seg.members if ep.node == node]
            out += [(m, ep) for m in mine for ep in seg.members if ep.node != node]
        return out

    def nat_of(self, node: str) -> tuple[Endpoint, "Node"] | None:
        """For a spoke behind a NAT box: ``(the spoke's NBMA endpoint, the NAT node)``."""
        if not self.dmvpn or any(ep.node == node for ep in self._underlay_members()):
            return None
        for mine, theirs in self.neighbours(node):
            if self.nodes[theirs.node].role == "nat":
                return mine, self.nodes[theirs.node]
        return None

    def _underlay_members(self) -> tuple[Endpoint, ...]:
        try:
            return self.segment(self.dmvpn.underlay).members if self.dmvpn else ()
        except KeyError:
            return ()

    def nbma(self, node: str) -> Endpoint:
        """The endpoint carrying ``node``'s NBMA address: on the underlay, or behind its NAT box."""
        for ep in self._underlay_members():
            if ep.node == node:
                return ep
        behind = self.nat_of(node)
        if behind:
            return behind[0]
        raise LookupError(f"{node} is neither on the underlay nor behind a NAT box")

    def outside(self, nat: str) -> Endpoint:
        """A NAT box's outside endpoint: its ``outside`` interface, else the one on the underlay."""
        want = self.nodes[nat].outside
        for ep in self.endpoints(nat):
            if ep.ifname == want or (want is None and ep in self._underlay_members()):
                return ep
        raise LookupError(f"NAT box {nat} has no outside interface")

    def public_nbma(self, node: str) -> ipaddress.IPv4Address:
        """The address others see ``node``'s tunnel packets from: its NAT's outside address if NATed."""
        behind = self.nat_of(node)
        return self.outside(behind[1].name).address.ip if behind else self.nbma(node).address.ip

    def shared_nat_groups(self) -> list[list[str]]:
        """Spokes that share one public NBMA address (behind the same NAT box), in groups of two or more.

        ESP transport mode protecting GRE cannot tell such spokes apart: the hub's kernel has one
        GRE policy towards that address, so only one of each group is served (docs/dmvpn.md).
        """
        by_public: dict[ipaddress.IPv4Address, list[str]] = {}
        for spoke in self.spokes():
            try:
                by_public.setdefault(self.public_nbma(spoke.name), []).append(spoke.name)
            except LookupError:
                continue
        return [names for names in by_public.values() if len(names) > 1]

    def lans(self, node: str) -> list[ipaddress.IPv4Network]:
        """The networks of ``node`` other than its NBMA network or tunnel underlay (its LANs)."""
        try:
            nbma = self.nbma(node).ifname if self.dmvpn else None
        except LookupError:
            nbma = None
        if self.tunnel and node in self.tunnel.between:
            nbma = self.tunnel.underlay_ifname(node)
        return [ep.address.network for ep in self.endpoints(node) if ep.ifname != nbma]

    def dmvpn_lans(self) -> list[ipaddress.IPv4Network]:
        """Every LAN of every hub and spoke, in file order, without repeats."""
        out = []
        for n in self.nodes.values():
            if n.in_dmvpn:
                out += [net for net in self.lans(n.name) if net not in out]
        return out

    def summary(self) -> ipaddress.IPv4Network | None:
        """Phase 3: the prefix the hub advertises instead of the LANs (given, or the smallest covering all)."""
        dm = self.dmvpn
        if dm is None or dm.phase != 3:
            return None
        if dm.summary is not None:
            return dm.summary
        lans = self.dmvpn_lans()
        if not lans:
            return None
        net = lans[0]
        while not all(lan.subnet_of(net) for lan in lans):
            net = net.supernet()
        return net

    def hubs(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.role == "hub"]

    def spokes(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.role == "spoke"]

    def segment(self, name: str) -> Segment:
        for seg in self.segments:
            if seg.name == name:
                return seg
        raise KeyError(name)

    def owner_of(self, address: ipaddress.IPv4Address) -> str | None:
        """The node holding ``address`` on any interface, tunnel included."""
        for ep in self.endpoints():
            if ep.address.ip == address:
                return ep.node
        for node in self.nodes.values():
            if node.tunnel_address == address:
                return node.name
        t = self.tunnel
        for end in t.between if t else ():
            inner = t.inner_address(end)
            if (inner and inner.ip == address) or (t.loopbacks and t.outer_address(end) == address):
                return end
        return None

    def required_kernel_features(self) -> list[str]:
        """Kernel features this topology needs beyond netns and veth."""
        feats = ["veth", "bridge"] if self.segments else ["veth"]
        if self.dmvpn:
            feats += ["gre", "nflog"]
            if self.dmvpn.ipsec.enabled:
                feats += ["esp", "xfrm"]
        if any(n.role == "nat" for n in self.nodes.values()):
            feats.append("nat")
        if self.tunnel:
            feats += {"gre": ["gre"], "ipip": ["ipip"], "xfrm": ["xfrmi"], "l2tp": ["l2tp"]}.get(self.tunnel.encap, [])
            if self.tunnel.ipsec != "none":
                feats += ["esp", "xfrm"]
        return list(dict.fromkeys(feats))
