"""Kernel interfaces of a node through netlink: a GRE tunnel's endpoints and flags."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IFF_MULTICAST = 0x1000


@dataclass(frozen=True)
class GreLink:
    """A GRE interface as the kernel holds it. ``remote`` None: multipoint (mGRE)."""

    ifname: str
    local: ipaddress.IPv4Address | None
    remote: ipaddress.IPv4Address | None
    key: int | None
    multicast: bool

    @property
    def multipoint(self) -> bool:
        return self.remote is None


def _ip(value) -> ipaddress.IPv4Address | None:
    return ipaddress.IPv4Address(value) if value and value != "0.0.0.0" else None


def gre_link(pid: int, ifname: str) -> GreLink:
    """The GRE interface ``ifname`` of the node whose process is ``pid``."""
    from ..runtime.kernel import iproute

    with iproute(pid) as ipr:
        links = ipr.get_links(ifname=ifname)
    if not links:
        raise LookupError(f"no interface {ifname}")
    link = links[0]
    info = link.get_attr("IFLA_LINKINFO")
    data = info.get_attr("IFLA_INFO_DATA") if info else None
    if not info or info.get_attr("IFLA_INFO_KIND") != "gre" or data is None:
        raise LookupError(f"{ifname} is not a GRE interface")
    return GreLink(ifname, _ip(data.get_attr("IFLA_GRE_LOCAL")), _ip(data.get_attr("IFLA_GRE_REMOTE")),
                   data.get_attr("IFLA_GRE_OKEY"), bool(link["flags"] & IFF_MULTICAST))
