"""The path from a node to an address, hop by hop: TTL-limited ICMP echo from inside the node.

No traceroute process: a raw ICMP socket opened in the source node's namespace sends echo
requests with TTL 1, 2, ... and collects Time Exceeded replies. Each hop is retried, because
the first packet on a cold IPsec path is dropped while the SA is negotiated.
"""

from __future__ import annotations

import ipaddress
import os
import select
import socket
import struct
import time
from dataclasses import dataclass, field

from ..runtime import ns

ECHO_REQUEST, ECHO_REPLY, TIME_EXCEEDED, DEST_UNREACH = 8, 0, 11, 3


@dataclass(frozen=True)
class Hop:
    ttl: int
    address: ipaddress.IPv4Address | None  # None: no answer at this TTL
    node: str | None = None


@dataclass(frozen=True)
class Path:
    """The hops from ``source`` to ``target``; ``reached`` if the target answered."""

    source: str
    target: ipaddress.IPv4Address
    hops: tuple[Hop, ...]
    reached: bool
    nodes: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        names = " -> ".join(h.node or str(h.address or "*") for h in self.hops)
        return f"{self.source} -> {names}" + ("" if self.reached else " (target not reached)")

    def crosses(self, node: str) -> bool:
        return node in self.nodes


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def _echo(ident: int, seq: int, size: int | None = None) -> bytes:
    """An echo request; ``size`` pads the payload to that many bytes (an IP packet of size + 28)."""
    payload = b"labkit-path-probe"
    if size is not None:
        payload = (payload * (size // len(payload) + 1))[:size]
    header = struct.pack("!BBHHH", ECHO_REQUEST, 0, 0, ident, seq)
    return struct.pack("!BBHHH", ECHO_REQUEST, 0, _checksum(header + payload), ident, seq) + payload


def _match(packet: bytes, ident: int, seq: int) -> tuple[int, ipaddress.IPv4Address] | None:
    """(icmp type, responder) if ``packet`` answers our probe ``ident/seq``."""
    ihl = (packet[0] & 0x0F) * 4
    src = ipaddress.IPv4Address(packet[12:16])
    icmp = packet[ihl:]
    if len(icmp) < 8:
        return None
    ptype = icmp[0]
    if ptype == ECHO_REPLY:
        rid, rseq = struct.unpack("!HH", icmp[4:8])
        return (ptype, src) if (rid, rseq) == (ident, seq) else None
    if ptype in (TIME_EXCEEDED, DEST_UNREACH):
        inner = icmp[8:]
        if len(inner) < 28:
            return None
        iihl = (inner[0] & 0x0F) * 4
        rid, rseq = struct.unpack("!HH", inner[iihl + 4:iihl + 8])
        return (ptype, src) if (rid, rseq) == (ident, seq) else None
    return None


def trace(pid: int, source: str, target: str, owner_of=lambda ip: None, max_hops: int = 8,
          tries: int = 3, wait: float = 1.0) -> Path:
    """Trace from the node holding namespace ``pid`` towards ``target``.

    Args:
        owner_of: maps a responder address to a node name (for readable paths).
        tries: probes per TTL before the hop counts as silent.
        wait: seconds to wait for each probe's answer.
    """
    dst = ipaddress.IPv4Address(target)
    sock = ns.netns_socket(pid, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xFFFF
    hops: list[Hop] = []
    reached = False
    seq = 0
    try:
        for ttl in range(1, max_hops + 1):
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
            answer = None
            for _ in range(tries):
                seq = (seq + 1) & 0xFFFF
                sock.sendto(_echo(ident, seq), (str(dst), 0))
                deadline = time.monotonic() + wait
                while answer is None and (left := deadline - time.monotonic()) > 0:
                    ready, _, _ = select.select([sock], [], [], left)
                    if ready:
                        answer = _match(sock.recv(4096), ident, seq)
                if answer:
                    break
            if answer is None:
                hops.append(Hop(ttl, None))
                continue
            ptype, responder = answer
            hops.append(Hop(ttl, responder, owner_of(responder)))
            if ptype == ECHO_REPLY or responder == dst:
                reached = True
                break
            if ptype == DEST_UNREACH:
                break
    finally:
        sock.close()
    nodes = tuple(h.node for h in hops if h.node)
    return Path(source, dst, tuple(hops), reached, nodes)


def ping(pid: int, target: str, timeout: float = 1.0, size: int | None = None) -> bool:
    """One ICMP echo from inside the node holding namespace ``pid``; True if answered in time.

    ``size``: the echo's payload in bytes (the IP packet is ``size + 28``).
    """
    dst = ipaddress.IPv4Address(target)
    sock = ns.netns_socket(pid, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident, seq = os.getpid() & 0xFFFF, int(time.monotonic() * 1000) & 0xFFFF
    try:
        sock.sendto(_echo(ident, seq, size), (str(dst), 0))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([sock], [], [], left)
            if ready:
                answer = _match(sock.recv(4096), ident, seq)
                if answer and answer[0] == ECHO_REPLY:
                    return True
        return False
    finally:
        sock.close()
