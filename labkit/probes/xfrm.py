"""The kernel's IPsec SAs of a node (``ip xfrm state``): SPIs, modes and keys.

charon does not hand out keys over vici; the kernel does, to root, in the node's namespace.
They let a capture be opened and checked: :mod:`labkit.probes.decode` decrypts AES-GCM with
:func:`aead_keys`, and :mod:`labkit.probes.scapy_view` has Scapy verify (and decrypt) each ESP
packet with :func:`states`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .decode import EspKey


@dataclass(frozen=True)
class XfrmState:
    """One ESP state: its SPI, mode and algorithms with their keys (hex decoded)."""

    spi: int
    mode: str = ""
    aead: tuple[str, bytes, int] | None = field(default=None, repr=False)  # (algorithm, key+salt, ICV bits)
    auth: tuple[str, bytes, int] | None = field(default=None, repr=False)  # (algorithm, key, truncation bits)
    enc: tuple[str, bytes] | None = field(default=None, repr=False)  # (algorithm, key)


_SPI = re.compile(r"proto esp spi 0x([0-9a-f]+)(?:.*?mode (\w+))?")
_AEAD = re.compile(r"aead (\S+) 0x([0-9a-f]*) (\d+)")
_AUTH = re.compile(r"auth-trunc (\S+) 0x([0-9a-f]*) (\d+)")
_ENC = re.compile(r"\benc (\S+) ?(?:0x([0-9a-f]*))?")


def parse_states(text: str) -> dict[int, XfrmState]:
    """``{spi: XfrmState}`` for every ESP state in ``ip xfrm state`` output."""
    out = {}
    for block in re.split(r"\n(?=src )", text):
        m = _SPI.search(block)
        if not m:
            continue
        spi = int(m.group(1), 16)
        aead, auth, enc = _AEAD.search(block), _AUTH.search(block), _ENC.search(block)
        out[spi] = XfrmState(
            spi, m.group(2) or "",
            (aead.group(1), bytes.fromhex(aead.group(2)), int(aead.group(3))) if aead else None,
            (auth.group(1), bytes.fromhex(auth.group(2)), int(auth.group(3))) if auth else None,
            (enc.group(1), bytes.fromhex(enc.group(2) or "")) if enc else None)
    return out


def aead_keys(found: dict[int, XfrmState]) -> dict[int, EspKey]:
    """``{spi: EspKey}`` for every AES-GCM state (what :func:`labkit.probes.decode.decode` opens)."""
    return {spi: EspKey(spi, s.aead[1], s.aead[2] // 8) for spi, s in found.items()
            if s.aead and s.aead[0] == "rfc4106(gcm(aes))"}


def parse_esp_keys(text: str) -> dict[int, EspKey]:
    return aead_keys(parse_states(text))


def states(node) -> dict[int, XfrmState]:
    """A lab node's ESP states (root, inside the node)."""
    return parse_states(node.exec("ip", "xfrm", "state").check().stdout)

