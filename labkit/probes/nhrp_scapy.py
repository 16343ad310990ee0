"""A Scapy layer for NHRP (RFC 2332) as FRR nhrpd and Cisco DMVPN send it: over GRE, type 0x2001.

Scapy has no NHRP layer. This module defines one and **importing it binds it**:
:func:`bind` runs at import, so after ``import labkit.probes.nhrp_scapy`` every
``Ether / IP / GRE(proto=0x2001)`` frame dissects into :class:`NHRP`. That binding is the point
of the module; labkit imports it lazily, because importing Scapy is slow.

Covered (RFC 2332 §5):

- the 20-byte fixed header; ``pkt_size``, ``checksum`` (the IP checksum over the whole NHRP
  packet), ``ext_offset`` and the address type/length bytes are computed on build when unset;
- the mandatory part: address lengths, ``flags`` (named per packet type), ``request_id``, the
  source NBMA address and subaddress and the source and destination protocol addresses, then
  zero or more :class:`NHRPCIE` (client information entries) in ``cies``. An Error Indication
  has ``error_code`` and ``error_offset`` instead of the request id and carries the offending
  packet (``error_packet``, itself an :class:`NHRP`); a Traffic Indication has ``traffic_code``
  (0, redirect) and ``reserved`` in the same place (Cisco's layout as Wireshark decodes it; FRR
  leaves them zero) and carries the IP packet that triggered it (``orig_packet``);
- extensions (§5.3), a list of :class:`NHRPExtension` (compulsory bit, type, length, value):
  Responder Address, Forward/Reverse Transit NHS Record and Cisco's NAT Address extension carry
  CIEs; Authentication carries Cisco's 32-bit type and the secret (FRR follows Cisco; RFC 2332
  names the same four bytes reserved + SPI); Vendor Private a 24-bit vendor id and data. The End
  marker (type 0) is an ordinary element: the list is what is on the wire.

How FRR's traffic uses it: a spoke registers with the hub (Registration Request, flags
``unique`` unless ``ip nhrp registration no-unique``, and ``nat``) with a NAT Address extension
naming the hub; the hub's Registration Reply copies that extension and, if the spoke's source
NBMA differs from the address the packet came from (the spoke is behind NAT), appends a CIE with
the post-NAT address. When spoke-to-spoke traffic crosses the hub, the hub sends a Traffic
Indication (FRR's ``NHRP_PACKET_TRAFFIC_INDICATION``, Cisco's "redirect") to the sender, which
then sends a Resolution Request towards the other spoke; the Resolution Reply carries a CIE with
the responder's NBMA and tunnel address (prefix length 32). A spoke behind NAT puts its post-NAT
address (learnt from its Registration Reply) in the NAT extension of its resolution requests and
replies; :func:`summary` reports it as ``nat_address``.

Constants differ from RFC 2332 in places; the enumerations below name both where they differ.
"""

from __future__ import annotations

import ipaddress
import struct

from scapy.fields import (BitEnumField, BitField, BitFieldLenField, ByteEnumField, ByteField,
                          ConditionalField, FieldLenField, FlagsField, IntEnumField, IntField,
                          MultipleTypeField, PacketLenField, PacketListField, ShortEnumField,
                          ShortField, StrLenField, X3BytesField, XShortEnumField, XShortField,
                          XStrFixedLenField)
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE
from scapy.packet import Packet, bind_layers
from scapy.utils import checksum

__all__ = ["NHRP", "NHRPCIE", "NHRPExtension", "bind", "summary", "ETH_P_NHRP", "TYPES", "CIE_CODES",
           "ERROR_CODES", "EXTENSION_TYPES"]

ETH_P_NHRP = 0x2001
RESOLUTION_REQUEST, RESOLUTION_REPLY, REGISTRATION_REQUEST, REGISTRATION_REPLY = 1, 2, 3, 4
PURGE_REQUEST, PURGE_REPLY, ERROR_INDICATION, TRAFFIC_INDICATION = 5, 6, 7, 8
TYPES = {1: "Resolution Request", 2: "Resolution Reply", 3: "Registration Request", 4: "Registration Reply",
         5: "Purge Request", 6: "Purge Reply", 7: "Error Indication",
         8: "Traffic Indication"}  # 8: Cisco/FRR, not in RFC 2332 (IANA: unassigned)
EXT_END, EXT_RESPONDER, EXT_FORWARD_NHS, EXT_REVERSE_NHS, EXT_AUTH, EXT_VENDOR, EXT_NAT = 0, 3, 4, 5, 7, 8, 9
EXTENSION_TYPES = {0: "End of Extensions", 3: "Responder Address", 4: "Forward Transit NHS Record",
                   5: "Reverse Transit NHS Record", 7: "Authentication", 8: "Vendor Private",
                   9: "NAT Address"}  # 9: Cisco's, not in RFC 2332 (RFC 2735 uses 9 otherwise)
CIE_CODES = {0: "Success", 4: "Administratively Prohibited", 5: "Insufficient Resources",
             11: "No Binding Exists (FRR's value)", 12: "No Binding Exists", 13: "Binding Non-Unique",
             14: "Unique Address Already Registered"}
ERROR_CODES = {1: "Unrecognized Extension", 2: "Loop Detected (FRR's value)", 3: "Loop Detected",
               6: "Protocol Address Unreachable", 7: "Protocol Error", 8: "SDU Size Exceeded",
               9: "Invalid Extension", 10: "Invalid Resolution Reply", 11: "Authentication Failure",
               15: "Hop Count Exceeded"}
RESOLUTION_FLAGS = {0x8000: "source_is_router", 0x4000: "authoritative", 0x2000: "destination_stable",
                    0x1000: "unique", 0x0800: "source_stable", 0x0002: "nat"}  # nat: Cisco's
REGISTRATION_FLAGS = {0x8000: "unique", 0x0002: "nat"}
PURGE_FLAGS = {0x8000: "no_reply"}
_CIE_EXTENSIONS = (EXT_RESPONDER, EXT_FORWARD_NHS, EXT_REVERSE_NHS, EXT_NAT)
_FRR_COMPULSORY = (EXT_END, EXT_RESPONDER, EXT_FORWARD_NHS, EXT_REVERSE_NHS, EXT_AUTH)
_ADDR_TYPES = {0: "NSAP", 1: "E.164"}  # bit 6 of a type/length byte; bit 7 is reserved
_FIXED_LEN, _MANDATORY_FIXED_LEN = 20, 8


class _AddrField(StrLenField):
    """An NBMA or protocol address: IPv4/IPv6 as text, any other length as bytes."""

    def i2m(self, pkt, x):
        if isinstance(x, str):
            return ipaddress.ip_address(x).packed if x else b""
        return bytes(x or b"")

    def m2i(self, pkt, x):
        return str(ipaddress.ip_address(x)) if len(x) in (4, 16) else x

    def any2i(self, pkt, x):
        return self.m2i(pkt, self.i2m(pkt, x))

    def i2len(self, pkt, x):
        return len(self.i2m(pkt, x))

    def i2repr(self, pkt, x):
        return x if isinstance(x, str) else repr(x)


class NHRPCIE(Packet):
    """A client information entry (RFC 2332 §5.2.0.1): in the mandatory part and in extensions."""

    name = "NHRP CIE"
    fields_desc = [
        ByteEnumField("code", 0, CIE_CODES),
        ByteField("prefix_len", 0),
        ShortField("unused", 0),
        ShortField("mtu", 0),
        ShortField("holding_time", 0),
        BitEnumField("cli_addr_type", 0, 2, _ADDR_TYPES),
        BitFieldLenField("cli_addr_len", None, 6, length_of="cli_nbma"),
        BitEnumField("cli_saddr_type", 0, 2, _ADDR_TYPES),
        BitFieldLenField("cli_saddr_len", None, 6, length_of="cli_nbma_sub"),
        FieldLenField("cli_proto_len", None, length_of="cli_proto", fmt="B"),
        ByteField("preference", 0),
        _AddrField("cli_nbma", b"", length_from=lambda p: p.cli_addr_len),
        StrLenField("cli_nbma_sub", b"", length_from=lambda p: p.cli_saddr_len),
        _AddrField("cli_proto", b"", length_from=lambda p: p.cli_proto_len),
    ]

    def extract_padding(self, s):
        return b"", s


class NHRPExtension(Packet):
    """One extension (RFC 2332 §5.3): ``|C|u| type (14 bits) | length |`` and its value.

    ``compulsory`` left unset is set on build as FRR sends it: on End, Responder Address, both
    Transit NHS Records and Authentication, not on NAT Address or Vendor Private.
    ``NHRPExtension(type=0)`` is thus the End marker FRR appends after the last extension.
    """

    name = "NHRP extension"
    fields_desc = [
        BitField("compulsory", None, 1),
        BitField("unused", 0, 1),
        BitEnumField("type", EXT_END, 14, EXTENSION_TYPES),
        ShortField("len", None),
        ConditionalField(PacketListField("cies", [], NHRPCIE, length_from=lambda p: p.len),
                         lambda p: p.type in _CIE_EXTENSIONS),
        ConditionalField(IntEnumField("auth_type", 1, {1: "plaintext"}), lambda p: p.type == EXT_AUTH),
        ConditionalField(StrLenField("auth_data", b"", length_from=lambda p: max(0, p.len - 4)),
                         lambda p: p.type == EXT_AUTH),
        ConditionalField(X3BytesField("vendor_id", 0), lambda p: p.type == EXT_VENDOR),
        ConditionalField(StrLenField("vendor_data", b"", length_from=lambda p: max(0, p.len - 3)),
                         lambda p: p.type == EXT_VENDOR),
        ConditionalField(StrLenField("value", b"", length_from=lambda p: p.len),
                         lambda p: p.type not in _CIE_EXTENSIONS + (EXT_AUTH, EXT_VENDOR)),
    ]

    def post_build(self, p, pay):
        if self.len is None:
            p = p[:2] + struct.pack("!H", len(p) - 4) + p[4:]
        if self.compulsory is None and self.type in _FRR_COMPULSORY:
            p = bytes([p[0] | 0x80]) + p[1:]
        return p + pay

    def extract_padding(self, s):
        return b"", s


def _mandatory_rest(p) -> int:
    """Bytes of the mandatory part after its addresses: CIEs, or an indication's packet."""
    end = p.ext_offset or p.pkt_size or 0
    used = (_FIXED_LEN + _MANDATORY_FIXED_LEN + (p.shtl_len or 0) + (p.sstl_len or 0)
            + (p.src_proto_len or 0) + (p.dst_proto_len or 0))
    return max(0, end - used)


def _extensions_len(p) -> int:
    return max(0, (p.pkt_size or 0) - p.ext_offset) if p.ext_offset else 0


def _inner_ip(s: bytes, **kwargs) -> Packet:
    return IPv6(s) if s[:1] and s[0] >> 4 == 6 else IP(s)


def _nested_nhrp(s: bytes, **kwargs) -> Packet:
    return NHRP(s)


class NHRP(Packet):
    """NBMA Next Hop Resolution Protocol, RFC 2332 §5 (fixed header, mandatory part, extensions).

    IPv4 over IPv4 by default (``afn`` 1, ``pro_type`` 0x0800), version 1, hop count 64 (FRR's
    default; its registrations and traffic indications use 1). Leave ``pkt_size``, ``checksum``,
    ``ext_offset`` and the length fields unset to have them computed on build.
    """

    name = "NHRP"
    fields_desc = [
        ShortEnumField("afn", 1, {1: "IPv4", 2: "IPv6"}),
        XShortEnumField("pro_type", 0x0800, {0x0800: "IPv4", 0x86DD: "IPv6"}),
        XStrFixedLenField("pro_snap", b"\x00" * 5, 5),
        ByteField("hop_count", 64),
        ShortField("pkt_size", None),
        XShortField("checksum", None),
        ShortField("ext_offset", None),
        ByteField("version", 1),
        ByteEnumField("type", RESOLUTION_REQUEST, TYPES),
        BitEnumField("shtl_type", 0, 2, _ADDR_TYPES),
        BitFieldLenField("shtl_len", None, 6, length_of="src_nbma"),
        BitEnumField("sstl_type", 0, 2, _ADDR_TYPES),
        BitFieldLenField("sstl_len", None, 6, length_of="src_nbma_sub"),
        FieldLenField("src_proto_len", None, length_of="src_proto", fmt="B"),
        FieldLenField("dst_proto_len", None, length_of="dst_proto", fmt="B"),
        MultipleTypeField([
            (FlagsField("flags", 0, 16, RESOLUTION_FLAGS), lambda p: p.type in (1, 2)),
            (FlagsField("flags", 0, 16, REGISTRATION_FLAGS), lambda p: p.type in (3, 4)),
            (FlagsField("flags", 0, 16, PURGE_FLAGS), lambda p: p.type in (5, 6)),
        ], XShortField("flags", 0)),
        ConditionalField(IntField("request_id", 0), lambda p: p.type not in (7, 8)),
        ConditionalField(ShortEnumField("error_code", 0, ERROR_CODES), lambda p: p.type == ERROR_INDICATION),
        ConditionalField(ShortField("error_offset", 0), lambda p: p.type == ERROR_INDICATION),
        ConditionalField(ShortEnumField("traffic_code", 0, {0: "redirect"}), lambda p: p.type == TRAFFIC_INDICATION),
        ConditionalField(ShortField("reserved", 0), lambda p: p.type == TRAFFIC_INDICATION),
        _AddrField("src_nbma", b"", length_from=lambda p: p.shtl_len),
        StrLenField("src_nbma_sub", b"", length_from=lambda p: p.sstl_len),
        _AddrField("src_proto", b"", length_from=lambda p: p.src_proto_len),
        _AddrField("dst_proto", b"", length_from=lambda p: p.dst_proto_len),
        ConditionalField(PacketListField("cies", [], NHRPCIE, length_from=_mandatory_rest),
                         lambda p: p.type not in (ERROR_INDICATION, TRAFFIC_INDICATION)),
        ConditionalField(PacketLenField("error_packet", None, _nested_nhrp, length_from=_mandatory_rest),
                         lambda p: p.type == ERROR_INDICATION),
        ConditionalField(PacketLenField("orig_packet", None, _inner_ip, length_from=_mandatory_rest),
                         lambda p: p.type == TRAFFIC_INDICATION),
        PacketListField("extensions", [], NHRPExtension, length_from=_extensions_len),
    ]

    def post_build(self, p, pay):
        ext_len = self.get_field("extensions").i2len(self, self.extensions)
        if self.pkt_size is None:
            p = p[:10] + struct.pack("!H", len(p)) + p[12:]
        if self.ext_offset is None:
            p = p[:14] + struct.pack("!H", len(p) - ext_len if self.extensions else 0) + p[16:]
        if self.checksum is None:
            p = p[:12] + b"\x00\x00" + p[14:]
            p = p[:12] + struct.pack("!H", checksum(p)) + p[14:]
        return p + pay

    def extract_padding(self, s):
        return b"", s

    def mysummary(self):
        return self.sprintf("NHRP %NHRP.type% %NHRP.src_proto% > %NHRP.dst_proto%")


def bind() -> None:
    """Dissect and build GRE protocol type 0x2001 as :class:`NHRP` (idempotent)."""
    if not any(cls is NHRP for _, cls in GRE.payload_guess):
        bind_layers(GRE, NHRP, proto=ETH_P_NHRP)


def _text(addr) -> str | None:
    return addr if isinstance(addr, str) and addr else None


def summary(pkt: Packet) -> dict:
    """The NHRP message of ``pkt`` (any layer above or :class:`NHRP` itself) in a few plain fields.

    ``type`` is the name ("Registration Request"); ``code`` the first mandatory CIE's code, an
    Error Indication's error code or a Traffic Indication's traffic code, else None;
    ``request_id`` None for the two indications, which have none;
    ``nat_address`` the client NBMA address of the NAT extension's CIE for the station the packet
    is about (its client protocol address is a mandatory CIE's or the source's), else None.

    Raises:
        ValueError: ``pkt`` has no NHRP layer.
    """
    nhrp = pkt if isinstance(pkt, NHRP) else pkt.getlayer(NHRP)
    if nhrp is None:
        raise ValueError(f"no NHRP layer in {pkt.summary()}")
    kind = nhrp.type
    cies = [c for c in nhrp.cies or [] if isinstance(c, NHRPCIE)] if kind not in (7, 8) else []
    if kind in (ERROR_INDICATION, TRAFFIC_INDICATION):
        code = nhrp.error_code if kind == ERROR_INDICATION else nhrp.traffic_code
    else:
        code = cies[0].code if cies else None
    about = [c.cli_proto for c in cies if _text(c.cli_proto)] + [nhrp.src_proto]
    nat = [c for e in nhrp.extensions if isinstance(e, NHRPExtension) and e.type == EXT_NAT
           for c in e.cies or [] if isinstance(c, NHRPCIE)]
    nat_address = next((_text(c.cli_nbma) for proto in about for c in nat if c.cli_proto == proto), None)
    return {"type": nhrp.sprintf("%NHRP.type%"), "code": code, "src_nbma": _text(nhrp.src_nbma),
            "src_proto": _text(nhrp.src_proto), "dst_proto": _text(nhrp.dst_proto),
            "request_id": None if kind in (7, 8) else nhrp.request_id, "nat_address": nat_address}


bind()
