"""NHRP messages read from a capture: by labkit's Scapy layer, and by tshark as a second opinion.

A capture on a node's mGRE interface (``lab.capture("spoke1", "gre1", direction="both")``) holds
what nhrpd sends and receives, before IPsec and after it, with the outer IP and GRE headers.
:func:`messages` names each NHRP packet in order; :func:`tshark_messages` asks Wireshark's
dissector about the same pcap, so a test can require that both agree.
"""

from __future__ import annotations

import json
import shutil
import subprocess

from ..errors import PrerequisiteError

FIELDS = ("type", "src_nbma", "src_proto", "dst_proto")


def messages(capture) -> list[dict]:
    """The :func:`labkit.probes.nhrp_scapy.summary` of every NHRP packet in ``capture``, in order."""
    from . import nhrp_scapy

    return [nhrp_scapy.summary(p) for p in capture.packets() if nhrp_scapy.NHRP in p]


def tshark_messages(pcap: str) -> list[dict]:
    """tshark's reading of every NHRP packet in ``pcap``: :data:`FIELDS` and the request id.

    Raises:
        PrerequisiteError: tshark is not installed.
    """
    from .nhrp_scapy import TYPES

    tshark = shutil.which("tshark")
    if tshark is None:
        raise PrerequisiteError("the NHRP cross-check needs tshark: apt-get install tshark")
    done = subprocess.run([tshark, "-r", pcap, "-T", "json", "-Y", "nhrp"], capture_output=True, text=True,
                          timeout=120, check=False)
    if done.returncode != 0:
        raise PrerequisiteError(f"tshark could not read {pcap}: {done.stderr.strip()}")
    out = []
    for packet in json.loads(done.stdout or "[]"):
        nhrp = packet["_source"]["layers"]["nhrp"]
        fixed, mand = nhrp["NHRP Fixed Header"], nhrp["NHRP Mandatory Part"]
        kind = TYPES[int(fixed["nhrp.hdr.op.type"])]
        reqid = mand.get("nhrp.reqid")
        out.append({"type": kind, "src_nbma": mand.get("nhrp.src.nbma.addr"), "src_proto": mand.get("nhrp.src.prot.addr"),
                    "dst_proto": mand.get("nhrp.dst.prot.addr"), "request_id": int(reqid, 16) if reqid else None})
    return out


def in_order(seen: list[str], wanted: list[str]) -> bool:
    """Whether ``wanted`` occurs in ``seen`` in this order (other messages may come between)."""
    it = iter(seen)
    return all(any(s == w for s in it) for w in wanted)
