"""Render FRR configuration (zebra, nhrpd, bgpd) and the daemon command lines for a node."""

from __future__ import annotations

from ..model import Dmvpn, Node, Topology
from .plan import DaemonPlan

FRR_BIN = "/usr/lib/frr"
CONF_DIR = "/run/labkit/frr"
LOG_DIR = "/run/labkit/log"
NFLOG_GROUP = 1
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
    if node.role == "hub":
        lines.append(f"nhrp nflog-group {NFLOG_GROUP}")
    lines += [
        f"interface {dm.ifname}",
        f" ip nhrp network-id {dm.network_id}",
        f" ip nhrp holdtime {dm.holdtime}",
    ]
    if dm.authentication:
        lines.append(f" ip nhrp authentication {dm.authentication}")
    if node.role == "hub":
        lines.append(" ip nhrp redirect")
    else:
        lines += [
            f" ip nhrp nhs dynamic nbma {hub_nbma}",
            " ip nhrp registration no-unique",
            " ip nhrp shortcut",
        ]
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


def render(topo: Topology, node: Node, hub_nbma: str, underlay_if: str,
           lan_prefixes: list[str]) -> tuple[dict[str, str], list[DaemonPlan]]:
    """Config files and daemons of a DMVPN router (hub or spoke)."""
    dm = topo.dmvpn
    assert dm is not None
    files = {
        f"{CONF_DIR}/zebra.conf": zebra_conf(node),
        f"{CONF_DIR}/nhrpd.conf": nhrpd_conf(node, dm, hub_nbma, underlay_if),
        f"{CONF_DIR}/bgpd.conf": bgpd_conf(topo, node, lan_prefixes),
    }
    daemons = [daemon("zebra", stage=2), daemon("nhrpd", stage=3), daemon("bgpd", stage=3)]
    return files, daemons


def render_router(node: Node) -> tuple[dict[str, str], list[DaemonPlan]]:
    """A plain router: zebra only (static routes come through netlink)."""
    return {f"{CONF_DIR}/zebra.conf": zebra_conf(node)}, [daemon("zebra", stage=2)]
