"""Scapy's second opinion on a frame, with keys parsed from recorded `ip xfrm state` output."""

from __future__ import annotations

import os

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.ipsec import ESP, IPSecIntegrityError, SecurityAssociation
from scapy.layers.l2 import GRE, Ether

from labkit.probes import decode
from labkit.probes.scapy_view import dissect
from labkit.probes.xfrm import parse_states

INNER = IP(src="192.168.10.2", dst="192.168.30.2") / ICMP() / (b"p" * 72)
OUTER = dict(src="192.168.50.1", dst="192.168.50.2")


def xfrm_text(spi: int, mode: str, auth_key: bytes) -> str:
    """What `ip xfrm state` prints for a NULL/HMAC-SHA1-96 state (iproute2 6.1)."""
    return (f"src 192.168.50.1 dst 192.168.50.2\n\tproto esp spi 0x{spi:08x} reqid 1 mode {mode}\n"
            "\treplay-window 0 flag af-unspec\n"
            f"\tauth-trunc hmac(sha1) 0x{auth_key.hex()} 96\n\tenc ecb(cipher_null) \n"
            "\tlastused 2026-11-22 11:57:43\n\tanti-replay context: seq 0x0, oseq 0x3, bitmap 0x00000000\n")


@pytest.mark.parametrize("mode, payload, expected", [
    ("transport", GRE() / INNER, ("IP", "ESP", "GRE", "IP", "ICMP")),
    ("tunnel", IP(**OUTER, proto=47) / GRE() / INNER, ("IP", "ESP", "IP", "GRE", "IP", "ICMP")),
    ("tunnel", INNER, ("IP", "ESP", "IP", "ICMP")),
])
def test_scapy_opens_null_esp_with_the_kernel_key_and_agrees_with_labkits_decoder(mode, payload, expected):
    key, spi = os.urandom(20), 0xC10E867F
    sa = SecurityAssociation(ESP, spi=spi, crypt_algo="NULL", crypt_key=None, auth_algo="HMAC-SHA1-96", auth_key=key,
                             tunnel_header=IP(**OUTER) if mode == "tunnel" else None)
    clear = IP(**OUTER, proto=payload.__class__ is IP and 4 or 47) / payload if mode == "transport" else payload
    frame = bytes(Ether() / sa.encrypt(clear if mode == "transport" else IP(bytes(payload))))
    states = parse_states(xfrm_text(spi, mode, key))
    assert states[spi].mode == mode
    assert dissect(frame, states) == expected
    assert decode.decode(frame).stack[1:] == expected  # labkit's own walk says the same
    with pytest.raises(IPSecIntegrityError):  # a wrong key: the ICV check refuses the packet
        dissect(frame, parse_states(xfrm_text(spi, mode, os.urandom(20))))


def test_a_frame_without_esp_is_dissected_as_is():
    frame = bytes(Ether() / IP(**OUTER, proto=47) / GRE() / INNER)
    assert dissect(frame, {}) == ("IP", "GRE", "IP", "ICMP")


def test_aes_gcm_transport_mode_as_dmvpn_sends_it():
    key, spi = os.urandom(36), 0xC1A2B3C4
    sa = SecurityAssociation(ESP, spi=spi, crypt_algo="AES-GCM", crypt_key=key, crypt_icv_size=16)
    frame = bytes(Ether() / sa.encrypt(IP(**OUTER, proto=47) / GRE(key_present=1, key=42) / INNER))
    text = (f"src 192.168.50.1 dst 192.168.50.2\n\tproto esp spi 0x{spi:08x} reqid 1 mode transport\n"
            f"\treplay-window 0 flag af-unspec\n\taead rfc4106(gcm(aes)) 0x{key.hex()} 128\n")
    states = parse_states(text)
    assert dissect(frame, states) == ("IP", "ESP", "GRE", "IP", "ICMP")
    from labkit.probes.xfrm import parse_esp_keys

    assert decode.decode(frame, keys=parse_esp_keys(text)).stack[1:] == ("IP", "ESP", "GRE", "IP", "ICMP")
