"""OSPF and EIGRP neighbours from FRR as typed results (phase 1 routes over the tunnel with an IGP).

ospfd answers ``show ip ospf neighbor json``; eigrpd 8.4 has no JSON, so its text table is
parsed (``tests/data`` holds recorded outputs of both).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class IgpNeighbour:
    """One adjacency. ``state`` is OSPF's (``Full``, ``2-Way``, ...) or ``up`` for EIGRP."""

    protocol: str  # ospf | eigrp
    address: ipaddress.IPv4Address
    interface: str
    state: str
    role: str = ""  # OSPF on a broadcast network: DR, Backup, DROther
    router_id: str = ""

    @property
    def full(self) -> bool:
        """OSPF: the database is synchronised; EIGRP: the neighbour is listed (it is up)."""
        return self.state in ("Full", "up")


def parse_ospf(data: Any) -> list[IgpNeighbour]:
    """``show ip ospf neighbor json``: ``{"neighbors": {router-id: [{...}, ...]}}``.

    FRR 8.4 reports ``"state": "Full/DR"``; later releases split it into ``nbrState`` and ``role``.
    """
    out = []
    for rid, rows in ((data or {}).get("neighbors") or {}).items():
        for row in rows if isinstance(rows, list) else [rows]:
            state = row.get("nbrState") or row.get("state", "")
            state, _, role = state.partition("/")
            out.append(IgpNeighbour(
                "ospf", ipaddress.IPv4Address(row.get("ifaceAddress") or row.get("address")),
                (row.get("ifaceName") or "").split(":")[0], state, row.get("role") or role, rid))
    return out


def parse_eigrp(text: str) -> list[IgpNeighbour]:
    """``show ip eigrp neighbors``: rows of ``H Address Interface Hold Uptime SRTT RTO Q Seq``."""
    out = []
    for line in text.splitlines():
        cols = line.split()
        if len(cols) >= 3 and cols[0].isdigit():
            try:
                addr = ipaddress.IPv4Address(cols[1])
            except ValueError:
                continue
            out.append(IgpNeighbour("eigrp", addr, cols[2], "up"))
    return out
