"""Decode a captured underlay frame into its header stack and measure the encapsulation overhead.

A capture (:mod:`labkit.probes.capture`) holds raw Ethernet frames. This module names their
headers in wire order, such as ``Ether / IP / ESP / GRE / IP / ICMP``. It handles the
site-to-site tunnel types the labs compare: plain GRE (RFC 2784, with key and sequence per
RFC 2890), GRE carrying Ethernet, IPIP, ESP (RFC 4303) in tunnel and transport mode, ESP in
UDP 4500 (NAT-T, RFC 3948), and L2TPv3 over UDP (RFC 3931) carrying an Ethernet pseudowire.
It also returns the innermost IPv4 packet, so that :func:`overhead` can count how many bytes
the tunnel adds to it.

The labs configure ESP with NULL encryption (RFC 2410) and HMAC-SHA1-96 integrity, which adds
a 12-byte ICV. The payload is authenticated but sent in the clear, so the headers inside ESP
can be decoded without keys, and the tunnel types can be compared byte by byte. With real
encryption the ESP trailer looks random, the padding check below almost always fails, and the
payload shows as ``Raw``.

On the wire, IPIP protected by ESP in transport mode is identical to ESP in tunnel mode: both
are IP / ESP (next header 4) / IP. ``esp_mode`` here is therefore only what the next header
says ("tunnel" for 4). To tell the two apart, read the SA mode from strongSwan
(:mod:`labkit.probes.ipsec`).

The decoder works on bytes with ``struct`` and follows its own rules, not Scapy's guesses, so
it needs no Scapy. :class:`L2TPv3` is a Scapy layer for building test packets and for
``show()``; it is created on first access, and Scapy is imported only then.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

ESP_ICV_LEN = 12  # HMAC-SHA1-96
L2TP_PORT, IKE_PORT, NAT_T_PORT = 1701, 500, 4500
ETH_P_IP, ETH_P_TEB = 0x0800, 0x6558
GRE_C, GRE_R, GRE_K, GRE_S, GRE_VER = 0x8000, 0x4000, 0x2000, 0x1000, 0x0007
L2TP_T, L2TP_VER = 0x8000, 0x000F
IP_NEXT = {1: "ICMP", 4: "IP", 6: "TCP", 17: "UDP", 47: "GRE", 50: "ESP", 89: "OSPF"}
ESP_NEXT = {1: "ICMP", 4: "IP", 6: "TCP", 17: "UDP", 47: "GRE", 89: "OSPF"}
NO_NEXT_HEADER = 59  # RFC 4303 dummy packet (traffic flow confidentiality)


@dataclass(frozen=True)
class Decoded:
    """The headers of one frame, outermost first, and what the encapsulation adds."""

    stack: tuple[str, ...]  # e.g. ("Ether", "IP", "ESP", "GRE", "IP", "ICMP")
    wire_len: int  # total length of the outermost IPv4 packet; 0 if there is none
    inner: bytes | None  # the last (innermost) IPv4 packet, header and payload
    esp_mode: str | None  # "tunnel" (next header 4), "transport", or None without a valid ESP
    spi: int | None  # SPI of the first ESP header
    frame: bytes = field(default=b"", repr=False)  # what was decoded

    def text(self) -> str:
        """The stack without the frame's own Ethernet header: ``IP / ESP / GRE / IP / ICMP``."""
        stack = self.stack[1:] if self.stack[:1] == ("Ether",) else self.stack
        return " / ".join(stack)


@dataclass(frozen=True)
class EspKey:
    """An ESP SA's AEAD key as the kernel holds it (``ip xfrm state``: ``aead rfc4106(gcm(aes)) 0xKEYSALT 128``).

    With it, an encrypted ESP payload is opened and decoded like a NULL one (RFC 4106: an 8-byte
    IV after the ESP header, a 4-byte salt at the end of the key, AAD = SPI + sequence number).
    """

    spi: int
    key: bytes  # AES key followed by the 4-byte salt
    icv: int = 16

    def open(self, esp: bytes) -> bytes | None:
        """``esp`` with its payload decrypted, laid out as NULL ESP (header, plaintext, ICV); None if it fails."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if len(esp) < 16 + self.icv:
            return None
        iv, body = esp[8:16], esp[16:]
        try:
            plain = AESGCM(self.key[:-4]).decrypt(self.key[-4:] + iv, body, esp[:8])
        except InvalidTag:
            return None
        return esp[:8] + plain + bytes(self.icv)


@dataclass
class _Walk:
    icv: int
    stack: list[str]
    wire_len: int = 0
    inner: bytes | None = None
    esp_mode: str | None = None
    spi: int | None = None
    keys: dict[int, EspKey] | None = None


# A layer decoder appends its own name (if its header is valid) and returns the next layer's
# name and bytes; None ends the stack. Layers without a decoder (ICMP, TCP, OSPF, IKE, Raw)
# are terminal.
_Step = tuple[str | None, bytes]


def _ether(w: _Walk, data: bytes) -> _Step:
    if len(data) < 14:
        return "Raw", data
    w.stack.append("Ether")
    (ethertype,) = struct.unpack_from("!H", data, 12)
    return ("IP" if ethertype == ETH_P_IP else "Raw"), data[14:]


def _ip(w: _Walk, data: bytes) -> _Step:
    if len(data) < 20 or data[0] >> 4 != 4:
        return "Raw", data
    ihl = (data[0] & 0x0F) * 4
    total, frag, proto = struct.unpack_from("!H2xH1xB", data, 2)
    if ihl < 20 or total < ihl or len(data) < total:
        return "Raw", data
    w.stack.append("IP")
    packet = data[:total]  # anything after it is Ethernet padding
    if not w.wire_len:
        w.wire_len = total
    w.inner = packet
    if frag & 0x3FFF:  # a fragment (MF set or offset): the payload is not a whole header
        return "Raw", packet[ihl:]
    return IP_NEXT.get(proto, "Raw"), packet[ihl:]


def _gre(w: _Walk, data: bytes) -> _Step:
    if len(data) < 4:
        return "Raw", data
    flags, proto = struct.unpack_from("!HH", data)
    size = 4 + 4 * sum(bool(flags & bit) for bit in (GRE_C, GRE_K, GRE_S))
    if len(data) < size:
        return "Raw", data
    w.stack.append("GRE")
    if flags & (GRE_R | GRE_VER):  # source routing or version 1 (PPTP): Linux drops both
        return "Raw", data[4:]
    return {ETH_P_IP: "IP", ETH_P_TEB: "Ether"}.get(proto, "Raw"), data[size:]


def _esp(w: _Walk, data: bytes) -> _Step:
    if len(data) < 8:
        return "Raw", data
    w.stack.append("ESP")
    spi = struct.unpack_from("!I", data)[0]
    if w.spi is None:
        w.spi = spi
    icv = w.icv
    if w.keys and spi in w.keys:  # an encrypted SA whose key we read from the kernel
        opened = w.keys[spi].open(data)
        if opened is None:
            return "Raw", data[8:]
        data, icv = opened, w.keys[spi].icv
    n = len(data)
    if n < 8 + 2 + icv:
        return "Raw", data[8:]
    pad_len, next_header = data[n - icv - 2], data[n - icv - 1]
    end = n - icv - 2 - pad_len
    # NULL encryption specifies no padding, so RFC 4303 2.4 requires the default 1, 2, 3, ...
    if end < 8 or data[end:end + pad_len] != bytes(range(1, pad_len + 1)):
        return "Raw", data[8:]
    if w.esp_mode is None:
        w.esp_mode = "tunnel" if next_header == 4 else "transport"
    if next_header == NO_NEXT_HEADER:
        return None, b""
    return ESP_NEXT.get(next_header, "Raw"), data[8:end]


def _udp(w: _Walk, data: bytes) -> _Step:
    if len(data) < 8:
        return "Raw", data
    sport, dport, length = struct.unpack_from("!HHH", data)
    if not 8 <= length <= len(data):
        return "Raw", data
    w.stack.append("UDP")
    payload, ports = data[8:length], (sport, dport)
    if L2TP_PORT in ports:
        return "L2TPv3", payload
    if NAT_T_PORT in ports:
        if payload[:4] == b"\0\0\0\0":  # non-ESP marker (RFC 3948 2.2)
            return "IKE", payload[4:]
        if payload == b"\xff":  # NAT-keepalive (RFC 3948 2.3)
            return "Raw", payload
        return "ESP", payload
    if IKE_PORT in ports:
        return "IKE", payload
    return ("Raw" if payload else None), payload


def _l2tpv3(w: _Walk, data: bytes) -> _Step:
    if len(data) < 4:
        return "Raw", data
    (flags_version,) = struct.unpack_from("!H", data)
    if flags_version & L2TP_VER != 3:  # L2TPv2 also uses port 1701
        return "Raw", data
    if flags_version & L2TP_T:  # control message
        w.stack.append("L2TPv3")
        return None, b""
    if len(data) < 8:
        return "Raw", data
    w.stack.append("L2TPv3")
    return "Ether", data[8:]  # no cookie, no L2-specific sublayer: an Ethernet pseudowire


_LAYERS: dict[str, Callable[[_Walk, bytes], _Step]] = {
    "Ether": _ether, "IP": _ip, "GRE": _gre, "ESP": _esp, "UDP": _udp, "L2TPv3": _l2tpv3,
}


def decode(frame: bytes, l2: bool = True, esp_icv_len: int = ESP_ICV_LEN,
           keys: dict[int, EspKey] | None = None) -> Decoded:
    """Decode ``frame`` into its header stack. Never raises on malformed input.

    Args:
        frame: a captured frame, starting with Ethernet (``l2=True``) or IPv4 (``l2=False``).
        l2: whether the frame starts with a 14-byte Ethernet header.
        esp_icv_len: the ESP integrity check value length (12 for HMAC-SHA1-96).
        keys: AEAD keys by SPI (:func:`labkit.probes.xfrm.aead_keys` of the kernel's states): ESP with one of these SPIs
            is decrypted first, so an AES-GCM protected stack decodes too.

    Returns:
        The stack, outermost first. An undecodable rest appears as a final ``"Raw"``.
    """
    w = _Walk(icv=esp_icv_len, stack=[], keys=keys)
    layer, data = ("Ether" if l2 else "IP"), bytes(frame)
    # A loop over the layers, not recursion: nesting depth is bounded only by the frame length.
    while layer is not None:
        step = _LAYERS.get(layer)
        if step is None:
            w.stack.append(layer)
            break
        layer, data = step(w, data)
    return Decoded(tuple(w.stack), w.wire_len, w.inner, w.esp_mode, w.spi, bytes(frame))


def overhead(decoded: Decoded) -> int:
    """The bytes the encapsulation adds to the innermost IPv4 packet (0 without a tunnel).

    Raises:
        ValueError: the frame has no IPv4 packet.
    """
    if decoded.inner is None:
        raise ValueError(f"no IPv4 packet in {decoded.text() or 'an empty frame'}")
    return decoded.wire_len - len(decoded.inner)


def find(frames: Iterable, inner_src: str, inner_dst: str, proto: int = 1, **kw) -> Decoded | None:
    """The first frame whose innermost IPv4 packet goes from ``inner_src`` to ``inner_dst``.

    Args:
        frames: bytes, or objects with a ``data`` attribute such as capture ``Frame``.
        inner_src: source address of the innermost IPv4 header.
        inner_dst: destination address of the innermost IPv4 header.
        proto: its IP protocol number (1 = ICMP).
        **kw: passed to :func:`decode` (``l2``, ``esp_icv_len``, ``keys``).

    Returns:
        The decoded frame, or None if no frame matches. An unencapsulated packet also matches.
    """
    src, dst = ipaddress.IPv4Address(inner_src).packed, ipaddress.IPv4Address(inner_dst).packed
    for frame in frames:
        decoded = decode(getattr(frame, "data", frame), **kw)
        inner = decoded.inner
        if inner is not None and inner[9] == proto and inner[12:16] == src and inner[16:20] == dst:
            return decoded
    return None


def _l2tpv3_layer():
    from scapy.fields import IntField, ShortField
    from scapy.layers.l2 import Ether
    from scapy.packet import Packet, Raw

    class L2TPv3(Packet):
        """L2TPv3 over UDP (RFC 3931 4.1.2.1), session header without cookie.

        A data message (T bit clear) carries an Ethernet frame, as Linux ``l2tp_eth`` sends
        it with ``l2spec_type none``. The layer is not bound to UDP 1701: Scapy binds that
        port to its L2TPv2 layer, and a global binding would change Scapy for everyone.
        """

        name = "L2TPv3"
        fields_desc = [
            ShortField("flags_version", 0x0003),  # T bit 0x8000 = control; version 3
            ShortField("reserved", 0),
            IntField("session_id", 0),
        ]

        def guess_payload_class(self, payload):
            return Raw if self.flags_version & L2TP_T else Ether

    return L2TPv3


def __getattr__(name: str):
    if name == "L2TPv3":  # built on first use, so importing this module does not load Scapy
        globals()[name] = layer = _l2tpv3_layer()
        return layer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
