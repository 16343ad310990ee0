"""The kernel's IPsec SAs of a node (``ip xfrm state``): SPIs, modes and AEAD keys.

charon does not hand out keys over vici; the kernel does, to root, in the node's namespace.
:func:`esp_keys` reads them so a capture of AES-GCM protected traffic can be decrypted and its
inner stack decoded (:mod:`labkit.probes.decode`).
"""

from __future__ import annotations

import re

from .decode import EspKey

_STATE = re.compile(r"proto esp spi 0x([0-9a-f]+).*?(?:aead rfc4106\(gcm\(aes\)\) 0x([0-9a-f]+) (\d+))", re.S)


def parse_esp_keys(text: str) -> dict[int, EspKey]:
    """``{spi: EspKey}`` for every AES-GCM ESP state in ``ip xfrm state`` output."""
    keys = {}
    for block in re.split(r"\n(?=src )", text):
        m = _STATE.search(block)
        if m:
            spi = int(m.group(1), 16)
            keys[spi] = EspKey(spi, bytes.fromhex(m.group(2)), int(m.group(3)) // 8)
    return keys


def esp_keys(node) -> dict[int, EspKey]:
    """The AEAD keys of a lab node's ESP states (root, inside the node)."""
    return parse_esp_keys(node.exec("ip", "xfrm", "state").check().stdout)
