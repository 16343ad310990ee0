"""A second opinion on a captured frame: Scapy dissects it, and opens ESP with the kernel's keys.

:mod:`labkit.probes.decode` walks the headers with explicit rules of its own. Here Scapy does
the same job its own way: ``Ether(frame)``, and for ESP a ``SecurityAssociation`` built from the
SA's keys in the kernel (:mod:`labkit.probes.xfrm`), which verifies the ICV (so the packet is
really that SA's) and strips the ESP header and trailer. The catalogue's measurement insists
that both agree.
"""

from __future__ import annotations

from .xfrm import XfrmState

# kernel algorithm names → Scapy's
_CRYPT = {"ecb(cipher_null)": "NULL", "cbc(aes)": "AES-CBC", "rfc4106(gcm(aes))": "AES-GCM"}
_AUTH = {"hmac(sha1)": "HMAC-SHA1-96", "hmac(sha256)": "SHA2-256-128"}
_NAMES = {"IP": "IP", "GRE": "GRE", "ICMP": "ICMP", "UDP": "UDP", "TCP": "TCP", "ESP": "ESP", "Ether": "Ether"}
_STOP = ("Raw", "Padding", "NoPayload")


def _sa(state: XfrmState):
    from scapy.layers.ipsec import ESP, SecurityAssociation

    if state.aead:
        algo, key, icv_bits = state.aead
        return SecurityAssociation(ESP, spi=state.spi, crypt_algo=_CRYPT[algo], crypt_key=key,
                                   crypt_icv_size=icv_bits // 8)
    enc, auth = state.enc or ("ecb(cipher_null)", b""), state.auth
    return SecurityAssociation(ESP, spi=state.spi, crypt_algo=_CRYPT[enc[0]], crypt_key=enc[1] or None,
                               auth_algo=_AUTH[auth[0]] if auth else None, auth_key=auth[1] if auth else None)


def _names(pkt, skip_first: bool = False) -> list[str]:
    out = []
    layer = pkt
    while layer is not None and layer.__class__.__name__ not in _STOP:
        name = layer.__class__.__name__
        out.append(_NAMES.get(name, name))
        if name == "UDP" and 1701 in (layer.sport, layer.dport):
            break  # Scapy's L2TP is version 2; labkit's own decoder handles L2TPv3
        layer = layer.payload if layer.payload else None
    return out[1:] if skip_first else out


def dissect(frame: bytes, states: dict[int, XfrmState]) -> tuple[str, ...]:
    """Scapy's header stack of ``frame`` (without Ethernet), ESP opened with the SA's keys.

    Raises:
        KeyError: an ESP packet of an SA not in ``states``.
        scapy.layers.ipsec.IPSecIntegrityError: its ICV does not verify.
    """
    from scapy.layers.inet import IP
    from scapy.layers.ipsec import ESP
    from scapy.layers.l2 import Ether

    ip = Ether(frame)[IP]
    if ESP not in ip:
        return tuple(_names(ip))
    esp = ip[ESP]
    # the SA is built without a tunnel header, so the outer IP header comes back in front of what
    # ESP carried, in either mode (tunnel mode: the inner IP packet follows it)
    opened = _sa(states[esp.spi]).decrypt(ip)
    return ("IP", "ESP", *_names(opened, skip_first=True))
