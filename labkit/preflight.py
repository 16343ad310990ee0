"""Before anything is created: are the programs and features a topology needs present?

Each missing piece is reported with the command that fixes it; all of them at once.
"""

from __future__ import annotations

import mmap
import os
import shutil

from .errors import PrerequisiteError
from .expand.frr import FRR_BIN
from .model import Topology
from .runtime.base import BASE_ENV

PATH = BASE_ENV["PATH"]  # what commands inside nodes see
APT = "apt-get install"


def _binary_mentions(path: str, needle: bytes) -> bool:
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return m.find(needle) != -1
    except (OSError, ValueError):
        return False


AUTH_PROBLEM = ("dmvpn.nhrp.authentication needs an FRR whose nhrpd supports 'ip nhrp authentication' "
                "(FRR 9.1 or later); {where}. Remove the setting or use a newer FRR")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(".") if x.isdigit())


def missing_docker(topo: Topology, runtime) -> list[str]:
    """Problems of a docker-runtime lab: images absent, or an image's FRR too old for the topology."""
    from . import image

    names = list(topo.nodes)
    try:
        runtime.check_images(names)
    except PrerequisiteError as exc:
        return [str(exc)]
    problems = []
    if topo.dmvpn and topo.dmvpn.authentication:
        for tag in sorted({runtime.image_of(n) for n in names if topo.nodes[n].in_dmvpn}):
            frr = image.image_versions(runtime.client, tag).get("frr", "")
            if frr and _version(frr) < (9, 1):
                problems.append(AUTH_PROBLEM.format(where=f"image {tag} has FRR {frr}"))
    return problems


def missing(topo: Topology, runtime=None) -> list[str]:
    """Human-readable problems, each naming its fix; empty when the host can run ``topo``.

    With a docker ``runtime`` the programs are the image's, so the host's are not checked.
    """
    problems = []
    if getattr(runtime, "name", "netns") == "docker":
        return ([] if os.geteuid() == 0 else ["labkit wires containers through netlink and needs root: run it with sudo"]) \
            + missing_docker(topo, runtime)
    if os.geteuid() != 0:
        problems.append("labkit creates network namespaces and needs root: run it with sudo")
    needs_frr = any(n.role in ("hub", "spoke", "router") for n in topo.nodes.values())
    routing = {"bgp": "bgpd", "ospf": "ospfd", "eigrp": "eigrpd"}
    daemons = ["zebra"] + (["nhrpd", routing[topo.dmvpn.protocol]] if topo.dmvpn else [])
    if needs_frr:
        absent = [d for d in daemons if not os.access(f"{FRR_BIN}/{d}", os.X_OK)]
        if absent:
            problems.append(f"FRR daemons {', '.join(absent)} are missing from {FRR_BIN}: {APT} frr")
    if topo.dmvpn:
        if not shutil.which("iptables", path=PATH):
            problems.append(f"iptables is missing (the hub's NFLOG rule needs it): {APT} iptables")
        if topo.dmvpn.authentication and not _binary_mentions(f"{FRR_BIN}/nhrpd", b"nhrp authentication"):
            problems.append(AUTH_PROBLEM.format(where="this host's nhrpd does not"))
        if topo.dmvpn.ipsec.enabled:
            if not os.access("/usr/sbin/charon-systemd", os.X_OK):
                problems.append(f"strongSwan's charon-systemd is missing: {APT} charon-systemd strongswan-swanctl")
            plugins = "/usr/lib/ipsec/plugins/libstrongswan-openssl.so"
            if not os.path.exists(plugins):
                problems.append("strongSwan's openssl plugin (AES-GCM, modp) is missing: "
                                f"{APT} libstrongswan-standard-plugins")
    return problems


def check(topo: Topology, runtime=None) -> None:
    """Raise :class:`PrerequisiteError` listing every missing prerequisite of ``topo``."""
    problems = missing(topo, runtime)
    if problems:
        raise PrerequisiteError("this host cannot run the lab yet:\n  - " + "\n  - ".join(problems))
