"""Kernel configuration of a node through netlink and procfs: no ``ip`` or ``sysctl`` processes.

Works on any node whose network namespace is reachable as ``/proc/PID/ns/net``: netns holders
and docker containers alike.
"""

from __future__ import annotations

import errno
import socket
import subprocess
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ..probes.links import IFF_MULTICAST
from ..expand.plan import GrePlan, NodePlan, RoutePlan, TunnelPlan, WirePlan
from ..errors import LabError
from . import ns

GRE_KEY_FLAG = 0x2000
RTN_BLACKHOLE = 6
# bridged frames must not traverse the host firewall (br_netfilter, loaded by docker)
_BRIDGE_SYSCTLS = {"net.bridge.bridge-nf-call-iptables": "0", "net.bridge.bridge-nf-call-arptables": "0"}


def iproute(pid: int) -> IPRoute:
    """An IPRoute bound to the network namespace of ``pid`` (no helper process)."""
    sock = ns.netns_socket(pid, socket.AF_NETLINK, socket.SOCK_DGRAM, 0)
    return IPRoute(use_socket=sock)


def create_veth(host: IPRoute, a_pid: int, a_if: str, b_pid: int, b_if: str) -> None:
    """Create a veth pair with each end born directly inside its namespace."""
    try:
        host.link("add", ifname=a_if, kind="veth", net_ns_pid=a_pid, peer={"ifname": b_if, "net_ns_pid": b_pid})
    except NetlinkError as exc:
        raise LabError(f"could not create veth {a_if}<->{b_if}: {exc}") from exc


def _index(ipr: IPRoute, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise LabError(f"interface {ifname} not found")
    return found[0]


def write_sysctls(pid: int, sysctls: dict[str, str]) -> None:
    """Write ``net.*`` sysctls inside the node's network namespace (procfs, per-thread netns)."""

    def apply() -> None:
        for key, value in sysctls.items():
            path = Path("/proc/sys") / key.replace(".", "/")
            try:
                path.write_text(f"{value}\n")
            except OSError as exc:
                raise LabError(f"sysctl {key}={value} failed: {exc.strerror}") from exc

    ns.in_netns(pid, apply)


def create_bridge(ipr: IPRoute, name: str = "br0") -> int:
    ipr.link("add", ifname=name, kind="bridge")
    idx = _index(ipr, name)
    ipr.link("set", index=idx, state="up")
    return idx


def attach_to_bridge(ipr: IPRoute, port: str, bridge_idx: int) -> None:
    idx = _index(ipr, port)
    ipr.link("set", index=idx, master=bridge_idx, state="up")


def create_gre(ipr: IPRoute, gre: GrePlan) -> None:
    """The multipoint GRE interface: ``gre ... key K ttl 64 local NBMA dev UNDERLAY``."""
    try:
        ipr.link("add", ifname=gre.ifname, kind="gre", gre_local=str(gre.local), gre_ikey=gre.key,
                 gre_okey=gre.key, gre_iflags=GRE_KEY_FLAG, gre_oflags=GRE_KEY_FLAG, gre_ttl=gre.ttl,
                 gre_link=_index(ipr, gre.dev))
    except NetlinkError as exc:
        if exc.code in (errno.EOPNOTSUPP, errno.ENODEV, errno.ENOENT):
            raise LabError(f"this kernel cannot create GRE interfaces ({exc}); use the VM sandbox "
                           "(--sandbox=on) or load the ip_gre module") from exc
        raise


def create_tunnel(pid: int, ipr: IPRoute, t: TunnelPlan) -> None:
    """A point-to-point tunnel interface; l2tp through ``ip l2tp`` (its generic netlink family), the rest by rtnetlink."""
    specs = {
        "gre": dict(kind="gre", gre_local=str(t.local), gre_remote=str(t.remote), gre_ttl=t.ttl),
        "ipip": dict(kind="ipip", ipip_local=str(t.local), ipip_remote=str(t.remote), ipip_ttl=t.ttl),
        "xfrm": dict(kind="xfrm", xfrm_link=_index(ipr, t.dev), xfrm_if_id=t.if_id),
    }
    try:
        if t.kind == "l2tp":
            tid, peer_tid, sid, peer_sid = t.l2tp
            for argv in (["ip", "l2tp", "add", "tunnel", "tunnel_id", str(tid), "peer_tunnel_id", str(peer_tid),
                          "encap", "udp", "local", str(t.local), "remote", str(t.remote),
                          "udp_sport", "1701", "udp_dport", "1701"],
                         ["ip", "l2tp", "add", "session", "name", t.ifname, "tunnel_id", str(tid),
                          "session_id", str(sid), "peer_session_id", str(peer_sid), "l2spec_type", "none"]):
                res = subprocess.run(argv, preexec_fn=ns.enter(pid), capture_output=True, text=True, timeout=30,
                                     stdin=subprocess.DEVNULL)
                if res.returncode != 0:
                    raise LabError(f"{' '.join(argv[:4])} failed: {res.stderr.strip()}. The l2tp_eth and "
                                   "l2tp_netlink modules are needed (the VM sandbox loads them)")
        else:
            ipr.link("add", ifname=t.ifname, **specs[t.kind])
    except NetlinkError as exc:
        raise LabError(f"this kernel cannot create a {t.kind} interface ({exc}); use the VM sandbox "
                       "(--sandbox=on) or load its module") from exc
    idx = _index(ipr, t.ifname)
    ipr.addr("add", index=idx, address=str(t.address.ip), prefixlen=t.address.network.prefixlen)
    ipr.link("set", index=idx, flags=IFF_MULTICAST, change=IFF_MULTICAST)  # OSPF hellos leave through it
    ipr.link("set", index=idx, state="up")


def add_route(ipr: IPRoute, route: RoutePlan) -> None:
    if route.blackhole:
        ipr.route("add", dst=str(route.dst), type=RTN_BLACKHOLE)
    else:
        ipr.route("add", dst=str(route.dst), gateway=str(route.via))


def configure_node(pid: int, plan: NodePlan) -> None:
    """Addresses, links up, mGRE, sysctls and routes: everything before daemons start."""
    with iproute(pid) as ipr:
        ipr.link("set", index=_index(ipr, "lo"), state="up")
        for ifname, addrs in plan.addresses.items():
            idx = _index(ipr, ifname)
            for a in addrs:
                ipr.addr("add", index=idx, address=str(a.ip), prefixlen=a.network.prefixlen)
            ipr.link("set", index=idx, state="up")
        if plan.gre:
            create_gre(ipr, plan.gre)
            idx = _index(ipr, plan.gre.ifname)
            ipr.addr("add", index=idx, address=str(plan.gre.address.ip), prefixlen=32)
            if plan.gre.multicast:
                ipr.link("set", index=idx, flags=IFF_MULTICAST, change=IFF_MULTICAST)
            ipr.link("set", index=idx, state="up")
        if plan.tunnel:
            create_tunnel(pid, ipr, plan.tunnel)
        write_sysctls(pid, plan.sysctls)
        for route in plan.routes:
            add_route(ipr, route)


def wire_all(pids: dict[str, int], wires: list[WirePlan]) -> None:
    """Create every veth; segment sides are enslaved to their segment's bridge."""
    with IPRoute() as host:
        for w in wires:
            create_veth(host, pids[w.a_node], w.a_ifname, pids[w.b_node], w.b_ifname)
    by_segment: dict[str, list[str]] = {}
    for w in wires:
        if w.segment:
            by_segment.setdefault(w.b_node, []).append(w.b_ifname)
    for seg, ports in by_segment.items():
        write_sysctls(pids[seg], _BRIDGE_SYSCTLS if Path("/proc/sys/net/bridge").exists() else {})
        with iproute(pids[seg]) as ipr:
            ipr.link("set", index=_index(ipr, "lo"), state="up")
            br = create_bridge(ipr)
            for port in ports:
                attach_to_bridge(ipr, port, br)
