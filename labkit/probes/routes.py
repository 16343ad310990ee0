"""Kernel routes of a node through netlink, as typed results."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

RT_PROTOS = {2: "kernel", 3: "boot", 4: "static", 186: "bgp", 191: "nhrp", 188: "ospf", 192: "eigrp", 196: "static"}
RT_TYPES = {1: "unicast", 2: "local", 6: "blackhole"}


@dataclass(frozen=True)
class KernelRoute:
    """One IPv4 route of the main table."""

    dst: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address | None
    dev: str | None
    proto: str
    type: str


def parse_routes(msgs, ifnames: dict[int, str]) -> list[KernelRoute]:
    out = []
    for m in msgs:
        if m.get("table") != 254 and m.get_attr("RTA_TABLE") != 254:
            continue
        dst = m.get_attr("RTA_DST") or "0.0.0.0"
        gw = m.get_attr("RTA_GATEWAY")
        oif = m.get_attr("RTA_OIF")
        if gw is None:
            mp = m.get_attr("RTA_MULTIPATH")
            if mp:
                gw = mp[0].get_attr("RTA_GATEWAY")
                oif = mp[0]["oif"]
        out.append(KernelRoute(
            dst=ipaddress.IPv4Network(f"{dst}/{m['dst_len']}", strict=False),
            gateway=ipaddress.IPv4Address(gw) if gw else None,
            dev=ifnames.get(oif) if oif else None,
            proto=RT_PROTOS.get(m["proto"], str(m["proto"])),
            type=RT_TYPES.get(m["type"], str(m["type"])),
        ))
    return out


def kernel_routes(pid: int) -> list[KernelRoute]:
    from ..runtime.kernel import iproute

    with iproute(pid) as ipr:
        names = {l["index"]: l.get_attr("IFLA_IFNAME") for l in ipr.get_links()}
        return parse_routes(ipr.get_routes(family=2), names)
