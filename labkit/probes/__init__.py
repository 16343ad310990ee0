"""Probes: read a node's state (FRR, strongSwan, kernel, wire) into typed results."""

from __future__ import annotations

import ipaddress
from typing import Any


def text(value: Any) -> str:
    """vici answers bytes, FRR JSON answers str: one text form for both."""
    if isinstance(value, (bytes, bytearray)):
        return value.decode(errors="replace")
    return str(value) if value is not None else ""


def ipv4(value: Any) -> ipaddress.IPv4Address | None:
    """An IPv4 address, or None for anything that is not one (``-``, empty, missing)."""
    try:
        return ipaddress.IPv4Address(text(value))
    except ValueError:
        return None
