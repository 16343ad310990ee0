"""Packet capture inside a node or segment: an AF_PACKET socket in a thread, no tcpdump process.

Frames are kept in memory, summarised by IP protocol, and can be written as a pcap file.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass

from ..runtime import ns

ETH_P_ALL = 0x0003
IP_PROTOS = {1: "icmp", 6: "tcp", 17: "udp", 47: "gre", 50: "esp", 51: "ah"}
LINKTYPE_ETHERNET, LINKTYPE_RAW = 1, 101
ARPHRD_RAW_IP = {778, 768, 776, 65534}  # ipgre, ipip (tunnel), sit, none: no link-layer header of their own


@dataclass(frozen=True)
class Frame:
    time: float
    data: bytes

    @property
    def ip_proto(self) -> int | None:
        if len(self.data) >= 34 and self.data[12:14] == b"\x08\x00":
            return self.data[23]
        return None

    @property
    def kind(self) -> str:
        """gre, esp, nat-t (ESP in UDP 4500), ike (UDP 500), icmp, ... or 'other'."""
        proto = self.ip_proto
        if proto == 17:
            ihl = (self.data[14] & 0x0F) * 4
            sport, dport = struct.unpack("!HH", self.data[14 + ihl:18 + ihl])
            if 4500 in (sport, dport):
                return "nat-t"
            if 500 in (sport, dport):
                return "ike"
            return "udp"
        return IP_PROTOS.get(proto, "other") if proto is not None else "other"


class Capture:
    """Capture on ``ifname`` in the namespace of ``pid`` until :meth:`stop`."""

    def __init__(self, pid: int, ifname: str | None, label: str = "", direction: str = "in"):
        """``direction``: "in" keeps frames the interface receives; "out" the ones it sends; "both".

        On a bridge port every frame also shows as outgoing, hence "in" by default. "out" is the
        wire as the sender put it: a receiver's "in" also shows what its kernel decapsulated
        (ESP tunnel mode hands the inner packet to the same interface's taps again).
        """
        if direction not in ("in", "out", "both"):
            raise ValueError(f"direction must be 'in', 'out' or 'both', not {direction!r}")
        self.direction = direction
        self.hatype: int | None = None  # the link type the interface reports (ARPHRD_*)
        self.label = label or ifname
        self.frames: list[Frame] = []
        self._sock = ns.netns_socket(pid, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        if ifname:
            self._sock.bind((ifname, ETH_P_ALL))  # protocol 0 would receive nothing
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.label}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._sock], [], [], 0.1)
            if ready:
                data, addr = self._sock.recvfrom(65535)
                self.hatype = addr[3]
                if self.direction == "both" or (addr[2] == socket.PACKET_OUTGOING) == (self.direction == "out"):
                    self.frames.append(Frame(time.time(), data))

    def stop(self) -> "Capture":
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
        return self

    def __enter__(self) -> "Capture":
        return self

    def __exit__(self, *exc) -> None:
        if not self._stop.is_set():
            self.stop()

    def counts(self) -> Counter:
        return Counter(f.kind for f in self.frames)

    @property
    def linktype(self) -> int:
        """The pcap link type: Ethernet, or raw IPv4 for a GRE device (frames start with the outer IP header)."""
        return LINKTYPE_RAW if self.hatype in ARPHRD_RAW_IP else LINKTYPE_ETHERNET

    def packets(self) -> list:
        """The frames as Scapy packets (NHRP over GRE dissects once :mod:`labkit.probes.nhrp_scapy` is imported)."""
        from scapy.layers.inet import IP
        from scapy.layers.l2 import Ether

        parse = IP if self.linktype == LINKTYPE_RAW else Ether
        return [parse(f.data) for f in self.frames]

    def write_pcap(self, path: str) -> None:
        """A pcap Wireshark and tshark open."""
        with open(path, "wb") as out:
            out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, self.linktype))
            for f in self.frames:
                sec = int(f.time)
                out.write(struct.pack("<IIII", sec, int((f.time - sec) * 1e6), len(f.data), len(f.data)))
                out.write(f.data)
