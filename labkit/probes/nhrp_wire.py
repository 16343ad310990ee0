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


def _pairs(pairs):
    """A JSON object hook that keeps repeated keys (tshark repeats "Client Information Entry") as lists."""
    out: dict = {}
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return {k: v[0] if len(v) == 1 else v for k, v in out.items()}


def find_all(tree, key: str) -> list:
    """Every value of ``key`` anywhere below ``tree`` (tshark's JSON), in document order."""
    found = []
    if isinstance(tree, dict):
        for k, v in tree.items():
            if k == key:
                found.extend(v if isinstance(v, list) else [v])
            else:
                found.extend(find_all(v, key))
    elif isinstance(tree, list):
        for item in tree:
            found.extend(find_all(item, key))
    return found


def tshark_tree(pcap: str) -> list[dict]:
    """tshark's NHRP tree (``-T json``) of every NHRP packet in ``pcap``.

    Raises:
        PrerequisiteError: tshark is not installed, or cannot read the file.
    """
    tshark = shutil.which("tshark")
    if tshark is None:
        raise PrerequisiteError("the NHRP cross-check needs tshark: apt-get install tshark")
    done = subprocess.run([tshark, "-r", pcap, "-T", "json", "-Y", "nhrp"], capture_output=True, text=True,
                          timeout=120, check=False)
    if done.returncode != 0:
        raise PrerequisiteError(f"tshark could not read {pcap}: {done.stderr.strip()}")
    packets = json.loads(done.stdout or "[]", object_pairs_hook=_pairs)
    packets = packets if isinstance(packets, list) else [packets]
    return [p["_source"]["layers"]["nhrp"] for p in packets]


def tshark_messages(pcap: str) -> list[dict]:
    """tshark's reading of every NHRP packet in ``pcap``: :data:`FIELDS`, the request id and the code.

    The code is the first CIE's, or an Error Indication's error code; tshark 4.0 shows no code
    (and no request id) for a Traffic Indication, so both are None there.

    Raises:
        PrerequisiteError: tshark is not installed.
    """
    from .nhrp_scapy import TYPES

    out = []
    for nhrp in tshark_tree(pcap):
        fixed, mand = nhrp["NHRP Fixed Header"], nhrp["NHRP Mandatory Part"]
        kind = TYPES[int(fixed["nhrp.hdr.op.type"])]
        reqid = mand.get("nhrp.reqid")
        if kind == "Error Indication":
            code = int(mand["nhrp.err.code"])
        else:
            codes = find_all(mand.get("Client Information Entry", []), "nhrp.code")
            code = int(codes[0]) if codes else None
        out.append({"type": kind, "src_nbma": mand.get("nhrp.src.nbma.addr"), "src_proto": mand.get("nhrp.src.prot.addr"),
                    "dst_proto": mand.get("nhrp.dst.prot.addr"), "request_id": int(reqid, 16) if reqid else None,
                    "code": code})
    return out


def pcap_messages(pcap: str) -> list[dict]:
    """labkit's reading (:func:`labkit.probes.nhrp_scapy.summary`) of every NHRP packet in ``pcap``."""
    from scapy.utils import rdpcap

    from . import nhrp_scapy

    return [nhrp_scapy.summary(p) for p in rdpcap(pcap) if nhrp_scapy.NHRP in p]


def disagreements(ours: list[dict], theirs: list[dict]) -> list[str]:
    """Where labkit's and tshark's readings of the same packets differ (empty when they agree).

    Compared: type, addresses, request id and code, except what tshark does not show for a
    Traffic Indication (its request id and traffic code).
    """
    if len(ours) != len(theirs):
        return [f"labkit found {len(ours)} NHRP packets, tshark {len(theirs)}"]
    out = []
    for i, (a, b) in enumerate(zip(ours, theirs), 1):
        keys = FIELDS + (() if a["type"] == "Traffic Indication" else ("request_id", "code"))
        diff = {k: (a[k], b[k]) for k in keys if a[k] != b[k]}
        if diff:
            out.append(f"packet {i} ({a['type']}): " + ", ".join(f"{k} labkit {x!r} tshark {y!r}"
                                                                for k, (x, y) in diff.items()))
    return out


def matching(seen: list[dict], kind: str, **fields) -> list[dict]:
    """The messages of type ``kind`` whose fields equal ``fields`` (e.g. ``src_nbma="192.0.2.2"``)."""
    return [m for m in seen if m["type"] == kind and all(m.get(k) == v for k, v in fields.items())]


def retries(seen: list[dict], kind: str, **fields) -> int:
    """How often a request was sent again: the number of matching messages minus one (0 if none)."""
    return max(0, len(matching(seen, kind, **fields)) - 1)


def in_order(seen: list[str], wanted: list[str]) -> bool:
    """Whether ``wanted`` occurs in ``seen`` in this order (other messages may come between)."""
    it = iter(seen)
    return all(any(s == w for s in it) for w in wanted)
