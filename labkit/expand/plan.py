"""What expansion produces: a concrete, runtime-neutral plan for every node and wire."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field


@dataclass(frozen=True)
class GrePlan:
    """A multipoint GRE interface: no remote, keyed, bound to the underlay interface."""

    ifname: str
    key: int
    local: ipaddress.IPv4Address
    dev: str
    address: ipaddress.IPv4Interface  # /32: nhrpd ignores a tunnel address that is not a host prefix
    ttl: int = 64
    multicast: bool = False  # an IGP's hellos leave through it (phase 1)


@dataclass(frozen=True)
class TunnelPlan:
    """A point-to-point tunnel interface: gre, ipip, xfrm (route-based IPsec) or l2tp (L2TPv3 over UDP)."""

    kind: str
    ifname: str
    local: ipaddress.IPv4Address
    remote: ipaddress.IPv4Address
    dev: str  # the underlay interface
    address: ipaddress.IPv4Interface
    if_id: int = 42  # xfrm: the interface id charon's SAs and policies carry
    l2tp: tuple[int, int, int, int] = (0, 0, 0, 0)  # l2tp: tunnel id, peer tunnel id, session id, peer session id
    ttl: int = 64


@dataclass(frozen=True)
class RoutePlan:
    """A kernel route. ``via`` None with ``blackhole`` True makes a blackhole route."""

    dst: ipaddress.IPv4Network
    via: ipaddress.IPv4Address | None = None
    blackhole: bool = False


@dataclass(frozen=True)
class DaemonPlan:
    """A long-running process of a node. ``ready`` is a file (node path) that appears when it serves."""

    name: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    ready: str | None = None
    stage: int = 0  # daemons of a lower stage start (and become ready) first


@dataclass
class NodePlan:
    """Everything one node needs, in the order the runtime applies it."""

    name: str
    role: str
    addresses: dict[str, list[ipaddress.IPv4Interface]] = field(default_factory=dict)
    gre: GrePlan | None = None
    tunnel: TunnelPlan | None = None
    sysctls: dict[str, str] = field(default_factory=dict)
    routes: list[RoutePlan] = field(default_factory=list)
    firewall: list[tuple[str, ...]] = field(default_factory=list)  # iptables argv lists
    files: dict[str, str] = field(default_factory=dict, repr=False)  # node path -> content (may hold the PSK)
    daemons: list[DaemonPlan] = field(default_factory=list)
    swanctl: str | None = None  # node path of swanctl.conf, loaded over vici once charon serves


@dataclass(frozen=True)
class WirePlan:
    """A veth pair. A side whose node is None lands in segment ``segment``'s bridge."""

    a_node: str
    a_ifname: str
    b_node: str
    b_ifname: str
    segment: str | None = None


@dataclass
class LabPlan:
    """The whole lab: nodes, segments (bridges) and wires."""

    name: str
    nodes: dict[str, NodePlan]
    segments: list[str]
    wires: list[WirePlan]
    psk: str | None = field(default=None, repr=False)  # a secret: never in a repr, log or error
