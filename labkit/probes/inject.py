"""Scapy packets sent from inside a node, with their replies or their loss.

Scapy builds the packets; the node's own kernel sends them. An IPv4 packet goes out through a
raw socket opened in the node's network namespace (``IPPROTO_RAW``: the header is ours, the
route and the link layer are the node's), an Ethernet frame through a packet socket bound to a
named interface. Nothing uses Scapy's routing table, which describes the machine labkit runs
on, not the node. A packet without a source address gets the one the node's kernel would choose
for its destination. Replies are frames the node receives during the exchange that Scapy's
``answers()`` matches to a sent packet (an echo reply to its request, a SYN-ACK or RST to a SYN,
an ICMP error to the datagram that caused it).

The same code serves every runtime: a docker node is a namespace too, entered by its pid.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

from ..runtime import ns
from ..errors import WaitTimeout
from ..wait import wait_until
from .capture import Capture


@dataclass
class Exchange:
    """One sent packet, when it left, and its reply (``None`` when none came)."""

    sent: object
    sent_at: float
    reply: object = None
    replied_at: float | None = None

    @property
    def rtt(self) -> float | None:
        return None if self.replied_at is None else self.replied_at - self.sent_at


@dataclass
class InjectResult:
    """What :func:`inject` sent and what came back."""

    node: str
    exchanges: list[Exchange] = field(default_factory=list)
    received: list = field(default_factory=list)  # every frame the node received meanwhile

    @property
    def sent(self) -> list:
        return [e.sent for e in self.exchanges]

    @property
    def answered(self) -> list[tuple[object, object]]:
        return [(e.sent, e.reply) for e in self.exchanges if e.reply is not None]

    @property
    def unanswered(self) -> list:
        return [e.sent for e in self.exchanges if e.reply is None]

    @property
    def replies(self) -> list:
        return [e.reply for e in self.exchanges if e.reply is not None]

    @property
    def loss(self) -> float:
        """The fraction of sent packets without a reply (0.0 to 1.0)."""
        return len(self.unanswered) / len(self.exchanges) if self.exchanges else 0.0

    def __str__(self) -> str:
        n, ok = len(self.exchanges), len(self.answered)
        return f"{self.node}: {n} sent, {ok} answered, {100 * self.loss:.0f}% loss"


def _expand(packets, count: int) -> list:
    """Every concrete packet (Scapy expands ranges such as ``ICMP(seq=(1, 5))``), ``count`` times over."""
    if not isinstance(packets, (list, tuple)):
        packets = [packets]
    concrete = [p for pkt in packets for p in pkt]
    if not concrete:
        raise ValueError("no packet to send")
    return [p.copy() for _ in range(count) for p in concrete]


def source_for(pid: int, dst: str) -> str:
    """The source address the node's kernel picks for ``dst`` (a connected UDP socket sends nothing)."""
    sock = ns.netns_socket(pid, socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.connect((dst, 9))
        return sock.getsockname()[0]
    except OSError as exc:
        raise OSError(f"no route to {dst} from this node: {exc.strerror}") from exc
    finally:
        sock.close()


def _prepare(pid: int, pkt) -> tuple[bytes, tuple]:
    """The bytes to send and the socket address, with the source filled in from the node's routes."""
    from scapy.layers.inet import IP
    from scapy.layers.l2 import Ether

    if isinstance(pkt, Ether):
        return bytes(pkt), ()
    if not isinstance(pkt, IP):
        raise ValueError(f"labkit injects IPv4 packets or Ethernet frames, not {pkt.summary()}")
    if "src" not in pkt.fields:
        pkt.src = source_for(pid, pkt.dst)
    return bytes(pkt), (pkt.dst, 0)


def _match(exchanges: list[Exchange], received: list) -> None:
    """Pair each received packet with the first unanswered sent packet it answers."""
    from scapy.layers.inet import IP

    for rx in received:
        for ex in exchanges:
            if ex.reply is None and (rx[IP].answers(ex.sent[IP]) if IP in rx and IP in ex.sent
                                     else rx.answers(ex.sent)):
                ex.reply, ex.replied_at = rx, rx.time
                break


def inject(pid: int, node: str, packets, count: int = 1, rate: float | None = None, timeout: float = 2.0,
           iface: str | None = None, expect_reply: bool = True) -> InjectResult:
    """Send ``packets`` from the node holding namespace ``pid`` and collect the replies.

    Args:
        packets: a Scapy packet, or a list; ranges in fields expand as in Scapy.
        count: how many times to send the whole set.
        rate: packets per second (default: back to back).
        timeout: how long to wait for the last replies after the last packet left.
        iface: the interface for Ethernet frames (required for them; IP packets follow the routes).
        expect_reply: False to send and return at once (``loss`` is then meaningless).
    """
    from scapy.layers.l2 import Ether

    todo = _expand(packets, count)
    if any(isinstance(p, Ether) for p in todo) and not iface:
        raise ValueError("an Ethernet frame needs iface= (the interface it leaves by)")
    raw = ns.netns_socket(pid, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    l2 = ns.netns_socket(pid, socket.AF_PACKET, socket.SOCK_RAW) if iface else None
    result = InjectResult(node)
    listener = Capture(pid, None, label=f"{node}:replies", direction="in") if expect_reply else None
    try:
        if l2 is not None:
            l2.bind((iface, 0))
        gap = 1.0 / rate if rate else 0.0
        next_at = time.monotonic()
        for pkt in todo:
            data, addr = _prepare(pid, pkt)
            if gap:  # pacing to the requested rate, not synchronisation
                time.sleep(max(0.0, next_at - time.monotonic()))
                next_at += gap
            pkt.time = time.time()  # before the send: a reply can be captured before sendto returns
            if addr:
                raw.sendto(data, addr)
            else:
                l2.send(data)
            result.exchanges.append(Exchange(pkt, pkt.time))
        if listener is None:
            return result
        parsed: list = []

        def all_answered() -> bool:
            new = listener.packets(start=len(parsed))
            parsed.extend(new)
            _match(result.exchanges, new)
            return not result.unanswered

        try:
            wait_until(all_answered, timeout, f"replies to {len(todo)} packet(s) from {node}", interval=0.05)
        except WaitTimeout:
            pass  # what stays unanswered is the loss the caller asked about
        return result
    finally:
        if listener is not None:
            listener.stop()
            result.received = listener.packets()
        raw.close()
        if l2 is not None:
            l2.close()
