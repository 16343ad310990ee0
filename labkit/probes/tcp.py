"""A bulk TCP transfer between two nodes, from sockets opened inside their namespaces.

No process is spawned: the listening socket is created in the receiver's network namespace
and the connecting one in the sender's (:func:`labkit.runtime.ns.netns_socket`), then this
process moves the bytes. Full-size segments are what a path MTU black hole swallows while
pings and the TCP handshake still pass, so a transfer of a few hundred kilobytes tells a
working path from a black-holed one.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
import time
from dataclasses import dataclass

from ..runtime import ns

CHUNK = 16384


@dataclass(frozen=True)
class Transfer:
    """What one transfer achieved: ``received`` of ``size`` bytes, confirmed by the receiver."""

    size: int
    received: int
    seconds: float
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.received == self.size

    def __str__(self) -> str:
        if self.ok:
            return f"{self.size} bytes in {self.seconds:.1f}s"
        return f"{self.received} of {self.size} bytes arrived in {self.seconds:.1f}s ({self.error or 'incomplete'})"


def transfer(src_pid: int, dst_pid: int, dst: str, size: int, timeout: float = 20.0) -> Transfer:
    """Send ``size`` bytes over TCP from the node of ``src_pid`` to ``dst`` in the node of ``dst_pid``.

    The receiver counts what arrives and answers the count, so ``ok`` means every byte crossed
    the path. Bounded by ``timeout`` seconds as a whole; a stall is reported, never waited out.
    """
    addr = str(ipaddress.IPv4Address(dst))
    server = ns.netns_socket(dst_pid, socket.AF_INET, socket.SOCK_STREAM)
    client = ns.netns_socket(src_pid, socket.AF_INET, socket.SOCK_STREAM)
    got = {"bytes": 0}
    t0 = time.monotonic()
    deadline = t0 + timeout

    def left() -> float:
        return max(0.01, deadline - time.monotonic())

    def receive() -> None:
        try:
            server.settimeout(left())
            conn, _ = server.accept()
            with conn:
                while True:
                    conn.settimeout(left())
                    data = conn.recv(65536)
                    if not data:
                        break
                    got["bytes"] += len(data)
                conn.sendall(struct.pack("!Q", got["bytes"]))
        except OSError:
            pass  # the sender reports what it saw

    error = ""
    try:
        server.bind((addr, 0))
        server.listen(1)
        receiver = threading.Thread(target=receive, name="tcp-receiver", daemon=True)
        receiver.start()
        try:
            client.settimeout(left())
            client.connect((addr, server.getsockname()[1]))
            payload = b"labkit-tcp-probe" * (CHUNK // 16)
            sent = 0
            while sent < size:
                client.settimeout(left())
                sent += client.send(payload[:min(CHUNK, size - sent)])
            client.shutdown(socket.SHUT_WR)
            client.settimeout(left())
            answer = b""
            while len(answer) < 8:
                chunk = client.recv(8 - len(answer))
                if not chunk:
                    break
                answer += chunk
            if len(answer) < 8:
                error = "the receiver closed without confirming"
        except socket.timeout:
            error = f"stalled: no progress within {timeout:g}s"
        except OSError as exc:
            error = exc.strerror or str(exc)
        finally:
            client.close()
            receiver.join(left())
    finally:
        server.close()
    return Transfer(size, got["bytes"], time.monotonic() - t0, error)
