"""NHRP state from FRR nhrpd as typed results: cache, NHS and shortcuts (FRR JSON output)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any


def _table(data: Any) -> list[dict]:
    """FRR wraps NHRP tables as ``{"attr": {...}, "table": [...]}``; accept a bare list too."""
    if isinstance(data, dict):
        return list(data.get("table", []))
    return list(data or [])


from . import ipv4 as _ip


@dataclass(frozen=True)
class CacheEntry:
    """One NHRP cache entry: a tunnel (protocol) address and the NBMA address it maps to."""

    interface: str
    type: str  # local, nhs, dynamic, cached, static, negative, ...
    protocol: ipaddress.IPv4Address | None
    nbma: ipaddress.IPv4Address | None
    claimed_nbma: ipaddress.IPv4Address | None
    used: bool
    identity: str

    @classmethod
    def from_json(cls, row: dict) -> "CacheEntry":
        return cls(
            interface=row.get("interface", ""), type=row.get("type", ""),
            protocol=_ip(row.get("protocol")), nbma=_ip(row.get("nbma")),
            claimed_nbma=_ip(row.get("claimedNbma", row.get("claimed_nbma"))),
            used=bool(row.get("used", False)), identity=str(row.get("identity", "")),
        )


@dataclass(frozen=True)
class NhsEntry:
    """One configured next-hop server as a spoke sees it."""

    interface: str
    fqdn: str
    nbma: ipaddress.IPv4Address | None
    protocol: ipaddress.IPv4Address | None

    @classmethod
    def from_json(cls, row: dict) -> "NhsEntry":
        return cls(interface=row.get("interface", ""), fqdn=str(row.get("fqdn", "")),
                   nbma=_ip(row.get("nbma")), protocol=_ip(row.get("protocol")))


@dataclass(frozen=True)
class Shortcut:
    """A spoke-to-spoke shortcut: a destination prefix reached directly via a peer's tunnel address."""

    type: str
    prefix: ipaddress.IPv4Network | None
    via: ipaddress.IPv4Address | None
    identity: str

    @classmethod
    def from_json(cls, row: dict) -> "Shortcut":
        try:
            prefix = ipaddress.IPv4Network(str(row.get("prefix")), strict=False)
        except ValueError:
            prefix = None
        return cls(type=row.get("type", ""), prefix=prefix, via=_ip(row.get("via")),
                   identity=str(row.get("identity", "")))


def parse_cache(data: Any) -> list[CacheEntry]:
    return [CacheEntry.from_json(r) for r in _table(data)]


def parse_nhs(data: Any) -> list[NhsEntry]:
    return [NhsEntry.from_json(r) for r in _table(data)]


def parse_shortcuts(data: Any) -> list[Shortcut]:
    return [Shortcut.from_json(r) for r in _table(data)]
