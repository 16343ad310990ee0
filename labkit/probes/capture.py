"""Packet capture inside a node or segment: an AF_PACKET socket in a thread, no tcpdump process.

Frames are kept in memory, summarised by IP protocol, returned as Scapy packets and written as
pcap files Wireshark opens. A filter in tcpdump's syntax runs in the kernel (classic BPF
attached to the socket); only compiling it borrows ``tcpdump -ddd``.
"""

from __future__ import annotations

import ctypes
import fcntl
import select
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import BinaryIO, Callable

from ..errors import LabError, PrerequisiteError
from ..runtime import ns

ETH_P_ALL = 0x0003
IP_PROTOS = {1: "icmp", 6: "tcp", 17: "udp", 47: "gre", 50: "esp", 51: "ah"}
LINKTYPE_ETHERNET, LINKTYPE_RAW = 1, 101
ARPHRD_RAW_IP = {778, 768, 776, 65534}  # ipgre, ipip (tunnel), sit, none: no link-layer header of their own
SIOCGIFHWADDR, SO_ATTACH_FILTER = 0x8927, 26
FAKE_ETHER = b"\x00" * 12 + b"\x08\x00"  # gives a raw-IP frame an Ethernet header in an Ethernet pcap


@dataclass(frozen=True)
class Frame:
    time: float
    data: bytes
    raw_ip: bool = False  # from an interface without a link-layer header (GRE, IPIP): data starts at IP

    @property
    def ether(self) -> bytes:
        """The frame with an Ethernet header (a made-up one for a raw-IP frame)."""
        return FAKE_ETHER + self.data if self.raw_ip else self.data

    @property
    def ip_proto(self) -> int | None:
        data = self.ether
        if len(data) >= 34 and data[12:14] == b"\x08\x00":
            return data[23]
        return None

    @property
    def kind(self) -> str:
        """gre, esp, nat-t (ESP in UDP 4500), ike (UDP 500), icmp, ... or 'other'."""
        proto = self.ip_proto
        if proto == 17:
            data = self.ether
            ihl = (data[14] & 0x0F) * 4
            sport, dport = struct.unpack("!HH", data[14 + ihl:18 + ihl])
            if 4500 in (sport, dport):
                return "nat-t"
            if 500 in (sport, dport):
                return "ike"
            return "udp"
        return IP_PROTOS.get(proto, "other") if proto is not None else "other"


def link_type(pid: int, ifname: str) -> int:
    """The ARPHRD_* type of ``ifname`` in the namespace of ``pid``.

    Raises:
        LabError: no such interface there.
    """
    sock = ns.netns_socket(pid, socket.AF_INET, socket.SOCK_DGRAM)
    try:
        answer = fcntl.ioctl(sock, SIOCGIFHWADDR, struct.pack("256s", ifname.encode()))
    except OSError as exc:
        raise LabError(f"no interface {ifname!r} to capture on: {exc.strerror}") from exc
    finally:
        sock.close()
    return struct.unpack_from("H", answer, 16)[0]


def compile_filter(expression: str, raw_ip: bool) -> bytes:
    """A tcpdump filter as a ``struct sock_fprog`` program for SO_ATTACH_FILTER.

    Raises:
        PrerequisiteError: tcpdump (the compiler) is not installed.
        ValueError: tcpdump rejects the expression.
    """
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        raise PrerequisiteError("capture filters are compiled by tcpdump: apt-get install tcpdump")
    done = subprocess.run([tcpdump, "-ddd", "-y", "RAW" if raw_ip else "EN10MB", expression],
                          capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise ValueError(f"bad capture filter {expression!r}: {done.stderr.strip()}")
    lines = done.stdout.split("\n")
    return b"".join(struct.pack("HBBI", *map(int, line.split())) for line in lines[1:int(lines[0]) + 1])


class PcapWriter:
    """A pcap stream: Ethernet, or raw IPv4 when every frame is raw IP. Wireshark reads it as it grows."""

    def __init__(self, out: BinaryIO, raw_ip: bool = False):
        self.out, self.raw_ip, self.count = out, raw_ip, 0
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_RAW if raw_ip else LINKTYPE_ETHERNET))

    def write(self, frame: Frame) -> None:
        data = frame.data if self.raw_ip else frame.ether
        sec = int(frame.time)
        self.out.write(struct.pack("<IIII", sec, int((frame.time - sec) * 1e6), len(data), len(data)))
        self.out.write(data)
        self.count += 1


class Capture:
    """Capture on ``ifname`` (every interface when None) in the namespace of ``pid`` until :meth:`stop`."""

    def __init__(self, pid: int, ifname: str | None, label: str = "", direction: str = "in",
                 bpf: str | None = None, on_frame: Callable[[Frame], None] | None = None):
        """``direction``: "in" keeps frames the interface receives; "out" the ones it sends; "both".

        On a bridge port every frame also shows as outgoing, hence "in" by default. "out" is the
        wire as the sender put it: a receiver's "in" also shows what its kernel decapsulated
        (ESP tunnel mode hands the inner packet to the same interface's taps again).

        ``bpf``: a tcpdump filter (``"udp port 500"``, ``"ip proto 47"``), applied in the kernel.
        On every interface at once it assumes Ethernet framing. ``on_frame``: called from the
        capture thread with each kept frame (for streaming to a file).
        """
        if direction not in ("in", "out", "both"):
            raise ValueError(f"direction must be 'in', 'out' or 'both', not {direction!r}")
        self.direction, self.bpf, self.on_frame = direction, bpf, on_frame
        self.hatype: int | None = link_type(pid, ifname) if ifname else None  # the interface's ARPHRD_*
        self.label = label or ifname
        self.frames: list[Frame] = []
        self._sock = ns.netns_socket(pid, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            if bpf:
                program = ctypes.create_string_buffer(compile_filter(bpf, self.hatype in ARPHRD_RAW_IP))
                # struct sock_fprog {len, pointer}: the kernel copies the program during the call
                fprog = struct.pack("HL", (len(program) - 1) // 8, ctypes.addressof(program))
                self._sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
            if ifname:
                self._sock.bind((ifname, ETH_P_ALL))  # protocol 0 would receive nothing
            self._drain()  # frames queued before the filter and the bind took effect: any interface, any kind
        except BaseException:
            self._sock.close()
            raise
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.label}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._sock], [], [], 0.1)
            if ready:
                self._take(*self._sock.recvfrom(65535))
        self._sock.setblocking(False)
        while True:  # what the kernel queued before stop() belongs to the capture too
            try:
                self._take(*self._sock.recvfrom(65535))
            except (BlockingIOError, OSError):
                return

    def _drain(self) -> None:
        self._sock.setblocking(False)
        try:
            while True:
                self._sock.recv(65535)
        except (BlockingIOError, InterruptedError):
            pass
        finally:
            self._sock.setblocking(True)

    def _take(self, data: bytes, addr) -> None:
        if self.direction == "both" or (addr[2] == socket.PACKET_OUTGOING) == (self.direction == "out"):
            frame = Frame(time.time(), data, raw_ip=addr[3] in ARPHRD_RAW_IP)
            self.frames.append(frame)
            if self.on_frame is not None:
                self.on_frame(frame)

    def stop(self) -> "Capture":
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
        return self

    @property
    def running(self) -> bool:
        return not self._stop.is_set()

    def __enter__(self) -> "Capture":
        return self

    def __exit__(self, *exc) -> None:
        if not self._stop.is_set():
            self.stop()

    def counts(self) -> Counter:
        return Counter(f.kind for f in self.frames)

    @property
    def linktype(self) -> int:
        """The pcap link type: raw IPv4 for a GRE/IPIP device (frames start with the outer IP header), else Ethernet."""
        return LINKTYPE_RAW if self.hatype in ARPHRD_RAW_IP else LINKTYPE_ETHERNET

    def packets(self, start: int = 0) -> list:
        """The frames (from index ``start``) as Scapy packets, each with its capture ``time``.

        NHRP over GRE dissects once :mod:`labkit.probes.nhrp_scapy` is imported.
        """
        from scapy.layers.inet import IP
        from scapy.layers.l2 import Ether

        out = []
        for f in self.frames[start:]:
            pkt = IP(f.data) if f.raw_ip else Ether(f.data)
            pkt.time = f.time
            out.append(pkt)
        return out

    def write_pcap(self, path: str) -> int:
        """Write a pcap Wireshark and tshark open; return the number of frames."""
        with open(path, "wb") as out:
            writer = PcapWriter(out, raw_ip=self.linktype == LINKTYPE_RAW)
            for f in list(self.frames):
                writer.write(f)
        return writer.count
