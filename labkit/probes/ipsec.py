"""IPsec state from strongSwan's vici socket as typed results (IKE SAs with their CHILD SAs)."""

from __future__ import annotations

import ipaddress
import socket
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import LabkitError


from . import ipv4 as _ip
from . import text as _s


@dataclass(frozen=True)
class ChildSa:
    """An ESP/AH CHILD_SA: state (INSTALLED, ...), mode (TRANSPORT/TUNNEL), selectors, counters."""

    name: str
    state: str
    mode: str
    protocol: str
    encap: bool
    local_ts: tuple[str, ...]
    remote_ts: tuple[str, ...]
    bytes_in: int
    bytes_out: int
    packets_in: int
    packets_out: int
    uniqueid: str = ""
    rekey_time: int = 0  # seconds until charon rekeys it
    spi_in: int = 0
    spi_out: int = 0
    encr_alg: str = ""  # e.g. AES_GCM_16, NULL
    integ_alg: str = ""  # e.g. HMAC_SHA1_96 (empty with an AEAD)

    @property
    def protects_gre(self) -> bool:
        """Both selectors are limited to GRE (IP protocol 47)."""
        return bool(self.local_ts) and all(ts.endswith("[gre]") for ts in self.local_ts + self.remote_ts)

    @classmethod
    def from_vici(cls, name: str, d: dict) -> "ChildSa":
        n = lambda k: int(_s(d.get(k)) or 0)  # noqa: E731
        return cls(
            name=_s(d.get("name", name)), state=_s(d.get("state")), mode=_s(d.get("mode")),
            protocol=_s(d.get("protocol")), encap=_s(d.get("encap")) == "yes",
            local_ts=tuple(_s(t) for t in d.get("local-ts", [])),
            remote_ts=tuple(_s(t) for t in d.get("remote-ts", [])),
            bytes_in=n("bytes-in"), bytes_out=n("bytes-out"), packets_in=n("packets-in"), packets_out=n("packets-out"),
            uniqueid=_s(d.get("uniqueid")), rekey_time=n("rekey-time"),
            spi_in=int(_s(d.get("spi-in")) or "0", 16), spi_out=int(_s(d.get("spi-out")) or "0", 16),
            encr_alg=_s(d.get("encr-alg")), integ_alg=_s(d.get("integ-alg")),
        )


@dataclass(frozen=True)
class IkeSa:
    """An IKE SA between two NBMA addresses and the CHILD SAs negotiated under it."""

    name: str
    state: str
    local_host: ipaddress.IPv4Address | None
    remote_host: ipaddress.IPv4Address | None
    nat_any: bool
    children: tuple[ChildSa, ...]
    uniqueid: str = ""
    established: int = 0  # seconds since it was established

    @classmethod
    def from_vici(cls, name: str, d: dict) -> "IkeSa":
        kids = d.get("child-sas", {}) or {}
        return cls(
            name=name, state=_s(d.get("state")), local_host=_ip(d.get("local-host")),
            remote_host=_ip(d.get("remote-host")),
            nat_any=any(_s(d.get(k)) == "yes" for k in ("nat-local", "nat-remote", "nat-any")),
            children=tuple(ChildSa.from_vici(k, v) for k, v in kids.items()),
            uniqueid=_s(d.get("uniqueid")), established=int(_s(d.get("established")) or 0),
        )


def parse_sas(blocks: list[dict]) -> list[IkeSa]:
    """``list-sas`` streams one ``{name: sa}`` block per IKE SA."""
    return [IkeSa.from_vici(_s(name), sa) for block in blocks for name, sa in block.items()]


@contextmanager
def session(vici_socket_path: str, timeout: float = 10.0):
    """A vici session on charon's socket (closed on exit)."""
    import vici  # imported lazily: only nodes with IPsec need it

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(vici_socket_path)
    except OSError as exc:
        sock.close()
        raise LabkitError(f"cannot reach charon's vici socket {vici_socket_path}: {exc.strerror or exc}") from exc
    try:
        yield vici.Session(sock)
    finally:
        sock.close()


def list_sas(vici_socket_path: str, timeout: float = 10.0) -> list[IkeSa]:
    """Query charon's vici socket for every IKE SA."""
    with session(vici_socket_path, timeout) as s:
        return parse_sas(list(s.list_sas()))


def rekey_all(vici_socket_path: str, ike: bool = True, timeout: float = 10.0) -> list[str]:
    """Ask charon to rekey every IKE SA (``ike``) or every CHILD SA; return the unique ids asked."""
    with session(vici_socket_path, timeout) as s:
        sas = parse_sas(list(s.list_sas()))
        ids = [sa.uniqueid for sa in sas] if ike else [c.uniqueid for sa in sas for c in sa.children]
        for uid in ids:
            s.rekey({"ike-id" if ike else "child-id": uid})
    return ids


def terminate_all(vici_socket_path: str, timeout: float = 10.0) -> list[str]:
    """Close every IKE SA (and its CHILD SAs) now, without waiting for the peer; return their ids."""
    with session(vici_socket_path, timeout) as s:
        ids = [sa.uniqueid for sa in parse_sas(list(s.list_sas()))]
        for uid in ids:
            for _ in s.terminate({"ike-id": uid, "force": "yes", "timeout": "-1"}):
                pass  # terminate streams log events; drain them
    return ids
