"""Render FRR configuration (zebra, nhrpd, bgpd or ospfd) and the daemon command lines for a node."""

from __future__ import annotations

from ..model import Dmvpn, Node, Topology
from .plan import DaemonPlan

FRR_BIN = "/usr/lib/frr"
CONF_DIR = "/run/labkit/frr"
LOG_DIR = "/run/labkit/log"
NFLOG_GROUP = 1
MCAST_NFLOG_GROUP = 2  # phase 1: multicast leaving the tunnel, sent by nhrpd to each NBMA it maps multicast to
IGP_HELLO, IGP_DEAD = 2, 8  # seconds: OSPF hello/dead intervals on the tunnel
OSPF_TUNNEL_NETWORK = "point-to-multipoint"
VICI_PROFILE = "dmvpn"  # the swanctl connection nhrpd asks charon to initiate in vici mode


def daemon(name: str, stage: int) -> DaemonPlan:
    """A FRR daemon in the node's private /run, config passed explicitly, no TCP vty."""
    argv = (
        f"{FRR_BIN}/{name}", "-f", f"{CONF_DIR}/{name}.conf", "-i", f"/run/frr/{name}.pid",
        "-z", "/run/frr/zserv.api", "--vty_socket", "/run/frr", "-u", "frr", "-g", "frr",
        "-A", "127.0.0.1", "-P", "0", "--limit-fds", "1024", "--log", f"file:{LOG_DIR}/{name}.log",
    )
    return DaemonPlan(name=name, argv=argv, ready=f"/run/frr/{name}.vty", stage=stage)


def _extra(node: Node, daemon_name: str) -> str:
    text = dict(node.frr_extra).get(daemon_name, "")
    return f"! --- frr_extra.{daemon_name} (from the topology) ---\n{text.rstrip()}\n" if text else ""


def zebra_conf(node: Node) -> str:
    return f"hostname {node.name}\nlog timestamp precision 3\n!\n{_extra(node, 'zebra')}"


def nhrpd_conf(node: Node, dm: Dmvpn, hub_nbma: str, underlay_if: str) -> str:
    lines = [f"hostname {node.name}", "log timestamp precision 3"]
    hub = node.role == "hub"
    if hub and dm.phase > 1:
        lines.append(f"nhrp nflog-group {NFLOG_GROUP}")
    if dm.igp:
        lines.append(f"nhrp multicast-nflog-group {MCAST_NFLOG_GROUP}")
    lines += [
        f"interface {dm.ifname}",
        f" ip nhrp network-id {dm.network_id}",
        f" ip nhrp holdtime {dm.holdtime}",
    ]
    if dm.authentication:
        lines.append(f" ip nhrp authentication {dm.authentication}")
    if hub:
        lines += [" ip nhrp redirect"] if dm.phase > 1 else []
        lines += [" ip nhrp map multicast dynamic"] if dm.igp else []
    else:
        lines += [
            f" ip nhrp nhs dynamic nbma {hub_nbma}",
            " ip nhrp registration no-unique",
        ]
        lines += [f" ip nhrp map multicast {hub_nbma}"] if dm.igp else []  # the spoke's hellos go to the hub
        lines += [" ip nhrp shortcut"] if dm.phase > 1 else []
    if dm.ipsec.enabled and dm.ipsec.mode == "vici":
        lines.append(f" tunnel protection vici profile {VICI_PROFILE}")
    lines += [f" tunnel source {underlay_if}", "exit", "!"]
    return "\n".join(lines) + "\n" + _extra(node, "nhrpd")


def bgpd_conf(topo: Topology, node: Node, lan_prefixes: list[str]) -> str:
    dm = topo.dmvpn
    assert dm is not None and node.tunnel_address is not None
    hub = topo.hubs()[0]
    lines = [
        f"hostname {node.name}", "log timestamp precision 3",
        f"router bgp {dm.asn}",
        f" bgp router-id {node.tunnel_address}",
        " no bgp default ipv4-unicast",
        " bgp log-neighbor-changes",
    ]
    if node.role == "hub":
        lines += [
            " neighbor SPOKES peer-group",
            f" neighbor SPOKES remote-as {dm.asn}",
            " neighbor SPOKES timers connect 5",
            " neighbor SPOKES timers 10 30",
            # the listen range must come after the peer-group is defined (DESIGN.md §2)
            f" bgp listen range {dm.network} peer-group SPOKES",
        ]
    else:
        lines += [
            f" neighbor {hub.tunnel_address} remote-as {dm.asn}",
            f" neighbor {hub.tunnel_address} timers connect 5",
            f" neighbor {hub.tunnel_address} timers 10 30",
        ]
    lines.append(" address-family ipv4 unicast")
    nets = list(lan_prefixes) + ([str(dm.network)] if node.role == "hub" else [])
    lines += [f"  network {p}" for p in nets]
    summary = topo.summary()
    if node.role == "hub" and summary is not None:
        # phase 3: spokes learn only the summary, via the hub; NHRP redirects build the shortcuts
        lines += [f"  aggregate-address {summary} summary-only", "  neighbor SPOKES activate",
                  "  neighbor SPOKES next-hop-self force"]
    elif node.role == "hub":
        # phase 2: spokes learn every LAN with the owning spoke as next hop
        lines += ["  neighbor SPOKES activate", "  neighbor SPOKES route-reflector-client"]
    else:
        lines.append(f"  neighbor {hub.tunnel_address} activate")
    lines += [" exit-address-family", "exit", "!"]
    return "\n".join(lines) + "\n" + _extra(node, "bgpd")


def ospfd_conf(topo: Topology, node: Node, lan_ifs: list[str]) -> str:
    """OSPF point-to-multipoint on the tunnel (seed 002's choice for phase 1), LANs passive.

    Broadcast with the hub as DR cannot run over FRR's nhrpd: nhrpd takes only a host (/32)
    tunnel address, and ospfd drops broadcast hellos from outside its interface's subnet
    (docs/dmvpn.md; asserted in topologies/dmvpn_phase1). A /32 point-to-multipoint
    interface skips that check.
    """
    dm = topo.dmvpn
    assert dm is not None and node.tunnel_address is not None
    lines = [f"hostname {node.name}", "log timestamp precision 3",
             f"interface {dm.ifname}", " ip ospf area 0", f" ip ospf network {OSPF_TUNNEL_NETWORK}",
             f" ip ospf hello-interval {IGP_HELLO}", f" ip ospf dead-interval {IGP_DEAD}", "exit"]
    for ifname in lan_ifs:
        lines += [f"interface {ifname}", " ip ospf area 0", " ip ospf passive", "exit"]
    lines += ["router ospf", f" ospf router-id {node.tunnel_address}", "exit", "!"]
    return "\n".join(lines) + "\n" + _extra(node, "ospfd")


def render(topo: Topology, node: Node, hub_nbma: str, underlay_if: str,
           lan_prefixes: list[str], lan_ifs: list[str]) -> tuple[dict[str, str], list[DaemonPlan]]:
    """Config files and daemons of a DMVPN router (hub or spoke): zebra, nhrpd and the routing daemon."""
    dm = topo.dmvpn
    assert dm is not None
    routing = {
        "bgp": ("bgpd", lambda: bgpd_conf(topo, node, lan_prefixes)),
        "ospf": ("ospfd", lambda: ospfd_conf(topo, node, lan_ifs)),
    }
    name, conf = routing[dm.protocol]
    files = {
        f"{CONF_DIR}/zebra.conf": zebra_conf(node),
        f"{CONF_DIR}/nhrpd.conf": nhrpd_conf(node, dm, hub_nbma, underlay_if),
        f"{CONF_DIR}/{name}.conf": conf(),
    }
    daemons = [daemon("zebra", stage=2), daemon("nhrpd", stage=3), daemon(name, stage=3)]
    return files, daemons


def render_router(node: Node) -> tuple[dict[str, str], list[DaemonPlan]]:
    """A plain router: zebra only (static routes come through netlink)."""
    return {f"{CONF_DIR}/zebra.conf": zebra_conf(node)}, [daemon("zebra", stage=2)]


def ospfd_p2p_conf(node: Node, ifname: str, lan_ifs: list[str], router_id: str) -> str:
    """OSPF over a point-to-point site-to-site tunnel (seed 000: VTI, GRE and IPIP run OSPF), LANs passive."""
    lines = [f"hostname {node.name}", "log timestamp precision 3",
             f"interface {ifname}", " ip ospf area 0", " ip ospf network point-to-point",
             f" ip ospf hello-interval {IGP_HELLO}", f" ip ospf dead-interval {IGP_DEAD}", "exit"]
    for lan in lan_ifs:
        lines += [f"interface {lan}", " ip ospf area 0", " ip ospf passive", "exit"]
    lines += ["router ospf", f" ospf router-id {router_id}", "exit", "!"]
    return "\n".join(lines) + "\n" + _extra(node, "ospfd")


def render_tunnel_router(node: Node, ifname: str | None, lan_ifs: list[str], router_id: str,
                         ospf: bool) -> tuple[dict[str, str], list[DaemonPlan]]:
    """A tunnel end: zebra, plus ospfd over the tunnel interface when the tunnel routes with OSPF."""
    files, daemons = render_router(node)
    if ospf and ifname:
        files[f"{CONF_DIR}/ospfd.conf"] = ospfd_p2p_conf(node, ifname, lan_ifs, router_id)
        daemons.append(daemon("ospfd", stage=3))
    return files, daemons
