"""Frame decoder on packets built with Scapy: header stacks, ESP NULL trailers, overhead, find()."""

from __future__ import annotations

import random
import struct

import pytest

pytest.importorskip("scapy")

from scapy.layers.inet import ICMP, IP, UDP  # noqa: E402
from scapy.layers.l2 import GRE, Ether  # noqa: E402
from scapy.packet import Raw  # noqa: E402

from labkit.probes.capture import Frame  # noqa: E402
from labkit.probes.decode import ESP_ICV_LEN, Decoded, L2TPv3, decode, find, overhead  # noqa: E402

ICV = bytes(range(0xA0, 0xA0 + ESP_ICV_LEN))  # any 12 bytes: the decoder does not check it
SPI = 0xC0FFEE01


def eth(type_: int | None = None) -> Ether:
    """Ethernet with fixed addresses: Scapy would otherwise resolve the destination by ARP."""
    if type_ is None:
        return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=type_)


def ping(src: str = "10.1.0.10", dst: str = "10.2.0.10", size: int = 56) -> IP:
    return IP(src=src, dst=dst) / ICMP(id=7, seq=1) / Raw(b"x" * size)


def under(payload, proto: int | None = None, src: str = "192.0.2.1", dst: str = "192.0.2.2") -> IP:
    """An underlay IPv4 header around ``payload``."""
    outer = IP(src=src, dst=dst) if proto is None else IP(src=src, dst=dst, proto=proto)
    return outer / payload


def esp_null(payload: bytes, next_header: int, spi: int = SPI, icv: bytes = ICV) -> tuple[bytes, int]:
    """ESP with NULL encryption (RFC 4303): header, payload, padding 1, 2, ... to a 4-byte
    boundary, pad length, next header, ICV. Returns the ESP bytes and the pad length."""
    pad = -(len(payload) + 2) % 4
    trailer = bytes(range(1, pad + 1)) + bytes([pad, next_header])
    return struct.pack("!II", spi, 1) + payload + trailer + icv, pad


def tunnel(inner: IP) -> tuple[IP, int]:
    """ESP tunnel mode: the whole inner packet is the ESP payload (next header 4)."""
    esp, pad = esp_null(bytes(inner), 4)
    return under(Raw(esp), proto=50), pad


def transport(packet: IP) -> tuple[IP, int]:
    """ESP transport mode: the packet's payload moves into ESP; its header stays outside."""
    raw = bytes(packet)
    ihl = (raw[0] & 0x0F) * 4
    esp, pad = esp_null(raw[ihl:], raw[9])
    return IP(src=packet.src, dst=packet.dst, proto=50) / Raw(esp), pad


def gre(payload, **fields) -> IP:
    return under(GRE(**fields) / payload)


def test_plain_icmp():
    packet = ping()
    d = decode(bytes(eth() / packet))
    assert d.stack == ("Ether", "IP", "ICMP")
    assert d.inner == bytes(packet)
    assert d.wire_len == len(packet)
    assert (d.esp_mode, d.spi) == (None, None)
    assert overhead(d) == 0


def test_without_l2():
    d = decode(bytes(ping()), l2=False)
    assert d.stack == ("IP", "ICMP")
    assert overhead(d) == 0


def test_gre_point_to_point():
    d = decode(bytes(eth() / gre(ping())))
    assert d.stack == ("Ether", "IP", "GRE", "IP", "ICMP")
    assert d.inner == bytes(ping())
    assert overhead(d) == 24


def test_gre_with_key_dmvpn():
    d = decode(bytes(eth() / gre(ping(), key_present=1, key=42)))
    assert d.stack == ("Ether", "IP", "GRE", "IP", "ICMP")
    assert overhead(d) == 28


def test_gre_with_checksum_key_and_sequence():
    packet = gre(ping(), chksum_present=1, key_present=1, key=42, seqnum_present=1, sequence_number=9)
    assert overhead(decode(bytes(eth() / packet))) == 36


def test_gre_nhrp_is_raw():
    d = decode(bytes(eth() / gre(Raw(b"\x00\x01" * 20), proto=0x2001)))
    assert d.stack == ("Ether", "IP", "GRE", "Raw")


def test_gre_transparent_ethernet_bridging():
    d = decode(bytes(eth() / gre(eth() / ping(), proto=0x6558)))
    assert d.stack == ("Ether", "IP", "GRE", "Ether", "IP", "ICMP")
    assert overhead(d) == 20 + 4 + 14


def test_ipip():
    d = decode(bytes(eth() / under(ping())))
    assert d.stack == ("Ether", "IP", "IP", "ICMP")
    assert overhead(d) == 20


def test_esp_transport_over_gre():
    packet, pad = transport(gre(ping()))
    d = decode(bytes(eth() / packet))
    assert d.stack == ("Ether", "IP", "ESP", "GRE", "IP", "ICMP")
    assert (d.esp_mode, d.spi) == ("transport", SPI)
    assert d.inner == bytes(ping())
    assert overhead(d) == 20 + 8 + 4 + pad + 2 + 12


def test_esp_tunnel_mode():
    packet, pad = tunnel(ping())
    d = decode(bytes(eth() / packet))
    assert d.stack == ("Ether", "IP", "ESP", "IP", "ICMP")
    assert (d.esp_mode, d.spi) == ("tunnel", SPI)
    assert overhead(d) == 20 + 8 + pad + 2 + 12


def test_esp_tunnel_mode_over_loopback_sourced_gre():
    packet, pad = tunnel(gre(ping(), key_present=1, key=1))
    d = decode(bytes(eth() / packet))
    assert d.stack == ("Ether", "IP", "ESP", "IP", "GRE", "IP", "ICMP")
    assert d.esp_mode == "tunnel"
    assert overhead(d) == 20 + 8 + 20 + 8 + pad + 2 + 12


def test_l2tpv3_pseudowire_in_esp_transport():
    l2tp = L2TPv3(session_id=0x1234) / eth() / ping()
    packet, pad = transport(under(UDP(sport=1701, dport=1701) / l2tp))
    d = decode(bytes(eth() / packet))
    assert d.stack == ("Ether", "IP", "ESP", "UDP", "L2TPv3", "Ether", "IP", "ICMP")
    assert d.esp_mode == "transport"
    assert overhead(d) == 20 + 8 + 8 + 8 + 14 + pad + 2 + 12


def test_l2tpv3_control_message_stops():
    d = decode(bytes(eth() / under(UDP(sport=1701, dport=1701) / L2TPv3(flags_version=0xC803) / Raw(b"c" * 12))))
    assert d.stack == ("Ether", "IP", "UDP", "L2TPv3")


def test_l2tpv2_on_1701_is_raw():
    d = decode(bytes(eth() / under(UDP(sport=1701, dport=1701) / Raw(b"\x00\x02" + b"\x00" * 10))))
    assert d.stack == ("Ether", "IP", "UDP", "Raw")


def test_l2tpv3_layer_dissects_its_ethernet_payload():
    frame = L2TPv3(bytes(L2TPv3(session_id=5) / eth() / ping()))
    assert frame.session_id == 5 and frame[IP].dst == "10.2.0.10"


def test_nat_t_esp_in_udp_4500():
    esp, pad = esp_null(bytes(ping()), 4)
    d = decode(bytes(eth() / under(UDP(sport=4500, dport=4500) / Raw(esp))))
    assert d.stack == ("Ether", "IP", "UDP", "ESP", "IP", "ICMP")
    assert (d.esp_mode, d.spi) == ("tunnel", SPI)
    assert overhead(d) == 20 + 8 + 8 + pad + 2 + 12


@pytest.mark.parametrize("port, payload", [(500, b"\x11" * 28), (4500, b"\0\0\0\0" + b"\x11" * 28)],
                         ids=["udp500", "udp4500-non-esp-marker"])
def test_ike(port, payload):
    d = decode(bytes(eth() / under(UDP(sport=port, dport=port) / Raw(payload))))
    assert d.stack == ("Ether", "IP", "UDP", "IKE")
    assert (d.esp_mode, d.spi) == (None, None)


def test_nat_keepalive_is_not_esp():
    d = decode(bytes(eth() / under(UDP(sport=4500, dport=4500) / Raw(b"\xff"))))
    assert d.stack == ("Ether", "IP", "UDP", "Raw")


def test_ethernet_padding_is_ignored():
    packet = IP(src="10.1.0.10", dst="10.2.0.10") / ICMP()
    frame = bytes(eth() / packet) + b"\0" * 18  # padded to the 60-byte Ethernet minimum
    d = decode(frame)
    assert d.stack == ("Ether", "IP", "ICMP")
    assert d.wire_len == 28 and d.inner == bytes(packet)
    assert overhead(d) == 0


def test_non_ip_ethertype():
    assert decode(bytes(eth(0x0806) / Raw(b"\0" * 28))).stack == ("Ether", "Raw")


def test_fragment_payload_is_raw():
    first = IP(bytes(gre(ping(size=100))))
    first.flags = "MF"
    assert decode(bytes(eth() / first)).stack == ("Ether", "IP", "Raw")


@pytest.mark.parametrize("esp, stack", [
    (struct.pack("!II", SPI, 1) + b"\xff" * 40, ("Ether", "IP", "ESP", "Raw")),  # pad length 255 > payload
    (struct.pack("!II", SPI, 1) + b"\x07" * 30 + bytes([3, 47]) + ICV, ("Ether", "IP", "ESP", "Raw")),  # bad padding
    (struct.pack("!II", SPI, 1) + b"abc", ("Ether", "IP", "ESP", "Raw")),  # shorter than a trailer
    (b"\x01\x02\x03", ("Ether", "IP", "Raw")),  # shorter than an ESP header
], ids=["pad-too-long", "bad-padding", "no-trailer", "no-header"])
def test_garbage_esp_is_raw(esp, stack):
    d = decode(bytes(eth() / under(Raw(esp), proto=50)))
    assert d.stack == stack
    assert d.esp_mode is None
    assert overhead(d) == 0  # the outer IP packet is the innermost one decoded


def test_truncated_and_random_frames_never_raise():
    packet, _ = transport(under(UDP(sport=1701, dport=1701) / L2TPv3(session_id=1) / eth() / ping()))
    frame = bytes(eth() / packet)
    for end in range(len(frame)):
        assert decode(frame[:end]).stack[-1] == "Raw"
    rng = random.Random(4303)
    for _ in range(500):
        decode(frame[:14 + 20] + rng.randbytes(rng.randrange(200)))


def test_overhead_without_ip():
    with pytest.raises(ValueError, match="no IPv4 packet"):
        overhead(decode(bytes(eth(0x86DD) / Raw(b"\0" * 40))))


def test_find_picks_the_matching_inner_packet():
    frames = [
        bytes(eth() / under(UDP(sport=500, dport=500) / Raw(b"\x11" * 28))),
        Frame(1.0, bytes(eth() / tunnel(ping(dst="10.3.0.10"))[0])),
        Frame(2.0, bytes(eth() / transport(gre(ping()))[0])),
        Frame(3.0, bytes(eth() / gre(ping()))),
    ]
    d = find(frames, "10.1.0.10", "10.2.0.10")
    assert d is not None and d.stack == ("Ether", "IP", "ESP", "GRE", "IP", "ICMP")
    assert find(frames, "10.1.0.10", "10.3.0.10").esp_mode == "tunnel"


def test_find_none_when_absent():
    frames = [bytes(eth() / gre(ping()))]
    assert find(frames, "10.2.0.10", "10.1.0.10") is None  # wrong direction
    assert find(frames, "10.1.0.10", "10.2.0.10", proto=6) is None  # wrong protocol
    assert find([], "10.1.0.10", "10.2.0.10") is None


def test_find_passes_decode_options():
    esp, _ = esp_null(bytes(ping()), 4, icv=b"\xa5" * 16)  # HMAC-SHA256-128
    frame = bytes(under(Raw(esp), proto=50))
    d = find([frame], "10.1.0.10", "10.2.0.10", l2=False, esp_icv_len=16)
    assert d is not None and d.stack == ("IP", "ESP", "IP", "ICMP")


def test_text():
    d = decode(bytes(eth() / transport(gre(ping()))[0]))
    assert d.text() == "IP / ESP / GRE / IP / ICMP"
    assert Decoded(("IP", "UDP", "L2TPv3", "Ether", "IP", "ICMP"), 0, None, None, None).text() == \
        "IP / UDP / L2TPv3 / Ether / IP / ICMP"


def test_decoder_agrees_with_scapy_ipsec():
    """Scapy's own ESP NULL / HMAC-SHA1-96 implementation builds the same trailer layout."""
    pytest.importorskip("cryptography")
    from scapy.layers.ipsec import ESP, SecurityAssociation

    sa = SecurityAssociation(ESP, spi=SPI, crypt_algo="NULL", crypt_key=b"", auth_algo="HMAC-SHA1-96",
                             auth_key=b"k" * 20, tunnel_header=IP(src="192.0.2.1", dst="192.0.2.2"))
    d = decode(bytes(eth() / sa.encrypt(gre(ping()))))
    assert d.stack == ("Ether", "IP", "ESP", "IP", "GRE", "IP", "ICMP")
    assert (d.esp_mode, d.spi) == ("tunnel", SPI)
    assert d.inner == bytes(ping())


def test_aes_gcm_esp_is_opened_with_the_kernel_key_and_decoded():
    """DMVPN's real ESP (aes256gcm16, transport, GRE with key): decrypted with the key `ip xfrm state` shows."""
    import os

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.l2 import GRE, Ether

    from labkit.probes.decode import EspKey
    from labkit.probes.xfrm import parse_esp_keys

    key, salt, spi, seq, iv = os.urandom(32), os.urandom(4), 0xC1A2B3C4, 5, os.urandom(8)
    inner = bytes(IP(src="10.0.1.2", dst="10.0.2.2") / ICMP() / (b"x" * 72))
    payload = bytes(GRE(key_present=1, key=42, proto=0x0800)) + inner
    pad = (-(len(payload) + 2)) % 4
    plain = payload + bytes(range(1, pad + 1)) + bytes([pad, 47])
    header = spi.to_bytes(4, "big") + seq.to_bytes(4, "big")
    esp = header + iv + AESGCM(key).encrypt(salt + iv, plain, header)
    frame = bytes(Ether() / IP(src="192.0.2.2", dst="192.0.2.3", proto=50) / esp)
    xfrm = (f"src 192.0.2.2 dst 192.0.2.3\n\tproto esp spi 0x{spi:08x} reqid 1 mode transport\n"
            f"\treplay-window 0 flag af-unspec\n\taead rfc4106(gcm(aes)) 0x{(key + salt).hex()} 128\n"
            "\tsel src 192.0.2.2/32 dst 192.0.2.3/32 proto gre\n"
            "src 192.0.2.3 dst 192.0.2.2\n\tproto esp spi 0x00000001 reqid 1 mode transport\n"
            "\tauth-trunc hmac(sha1) 0x00 96\n\tenc ecb(cipher_null) \n")
    keys = parse_esp_keys(xfrm)
    assert list(keys) == [spi] and keys[spi] == EspKey(spi, key + salt, 16)
    assert decode(frame).stack[-1] == "Raw"  # without the key: ciphertext
    opened = decode(frame, keys=keys)
    assert opened.text() == "IP / ESP / GRE / IP / ICMP" and opened.inner == inner
    assert overhead(opened) == 20 + 8 + 8 + 8 + pad + 2 + 16
    tampered = frame[:-1] + bytes([frame[-1] ^ 1])
    assert decode(tampered, keys=keys).stack[-1] == "Raw"  # the tag no longer verifies
