"""Probe this kernel for what a topology needs, by trying it in a throwaway namespace.

Each feature is tested the way labkit will use it (create a GRE link, install an ESP state,
insert an NFLOG rule), so a "yes" here means the lab will work, not that a module file exists.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ..runtime import ns
from ..runtime.kernel import GRE_KEY_FLAG

FEATURES = ("netns", "veth", "bridge", "gre", "ipip", "xfrmi", "l2tp", "esp", "xfrm", "nflog", "nat")


@dataclass(frozen=True)
class KernelReport:
    """Which features work on this kernel, with the reason for each one that does not."""

    available: frozenset[str]
    missing: dict[str, str]

    def lacks(self, needed: list[str]) -> dict[str, str]:
        return {f: self.missing[f] for f in needed if f in self.missing}


def _try_links(pid: int) -> dict[str, str]:
    """gre/veth/bridge: create and delete one link of each kind in the probe namespace."""
    missing = {}
    sock = ns.netns_socket(pid, socket.AF_NETLINK, socket.SOCK_DGRAM, 0)
    with IPRoute(use_socket=sock) as ipr:
        trials = {
            "veth": dict(ifname="lkp0", kind="veth", peer="lkp1"),
            "bridge": dict(ifname="lkpbr", kind="bridge"),
            "gre": dict(ifname="lkpgre", kind="gre", gre_local="192.0.2.1", gre_ikey=1, gre_okey=1,
                        gre_iflags=GRE_KEY_FLAG, gre_oflags=GRE_KEY_FLAG),
            "ipip": dict(ifname="lkpipip", kind="ipip", ipip_local="192.0.2.1", ipip_remote="192.0.2.2"),
            "xfrmi": dict(ifname="lkpxfrm", kind="xfrm", xfrm_if_id=7),
        }
        for feature, spec in trials.items():
            try:
                ipr.link("add", **spec)
            except NetlinkError as exc:
                missing[feature] = f"cannot create a {spec['kind']} link: {exc.args[1] if len(exc.args) > 1 else exc}"
    return missing


def _run_in(pid: int, argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, preexec_fn=ns.enter(pid), capture_output=True, text=True, timeout=20,
                          stdin=subprocess.DEVNULL)


def _try_esp(pid: int) -> dict[str, str]:
    """esp/xfrm: install a transport-mode ESP state (what charon does for a CHILD_SA)."""
    argv = ["ip", "xfrm", "state", "add", "src", "192.0.2.1", "dst", "192.0.2.2", "proto", "esp",
            "spi", "0x1000", "mode", "transport", "aead", "rfc4106(gcm(aes))",
            "0x" + "11" * 20, "128"]
    try:
        res = _run_in(pid, argv)
    except FileNotFoundError:
        return {"esp": "the 'ip' command (iproute2) is missing: apt-get install iproute2"}
    if res.returncode != 0:
        reason = res.stderr.strip() or f"ip xfrm exited {res.returncode}"
        return {"esp": f"cannot install an ESP state: {reason}", "xfrm": f"xfrm: {reason}"} if "xfrm" in reason.lower() \
            else {"esp": f"cannot install an ESP state: {reason}"}
    return {}


_PACKAGE = {"ip": "iproute2", "iptables": "iptables"}


def _try_argv(pid: int, feature: str, argv: list[str], failed: str) -> dict[str, str]:
    """``{feature: why}`` unless ``argv`` succeeds in the probe namespace."""
    try:
        res = _run_in(pid, argv)
    except FileNotFoundError:
        return {feature: f"{argv[0]} is not installed: apt-get install {_PACKAGE.get(argv[0], argv[0])}"}
    if res.returncode != 0:
        return {feature: f"{failed}: {res.stderr.strip() or f'exit code {res.returncode}'}"}
    return {}


def _try_l2tp(pid: int) -> dict[str, str]:
    """l2tp: the kernel's L2TP generic netlink family answers (l2tp_netlink, with l2tp_eth for sessions)."""
    return _try_argv(pid, "l2tp", ["ip", "l2tp", "show", "tunnel"], "no L2TP netlink family")


def _try_nflog(pid: int) -> dict[str, str]:
    """nflog: insert the hub's rate-limited NFLOG rule (iptables, hashlimit, NFLOG)."""
    argv = ["iptables", "-w", "-A", "FORWARD", "-m", "hashlimit", "--hashlimit-upto", "4/minute",
            "--hashlimit-name", "lkprobe", "-j", "NFLOG", "--nflog-group", "1"]
    return _try_argv(pid, "nflog", argv, "cannot insert an NFLOG rule")


def _try_nat(pid: int) -> dict[str, str]:
    """nat: insert a NAT box's MASQUERADE rule (conntrack, nf_nat)."""
    argv = ["iptables", "-w", "-t", "nat", "-A", "POSTROUTING", "-j", "MASQUERADE"]
    return _try_argv(pid, "nat", argv, "cannot insert a MASQUERADE rule")


def probe_kernel(features: list[str] | None = None) -> KernelReport:
    """Try each feature in a throwaway namespace and report what works.

    Raises:
        PermissionError: if namespaces cannot be created at all (not root).
    """
    wanted = set(features or FEATURES)
    try:
        pid = ns.spawn_holder({"lab": "probe", "node": "probe", "owner": os.getpid()}, "lkprobe")
    except OSError as exc:
        return KernelReport(frozenset(), {f: f"cannot create namespaces: {exc}" for f in wanted})
    try:
        missing = _try_links(pid)
        if wanted & {"esp", "xfrm"}:
            missing.update(_try_esp(pid))
        if "l2tp" in wanted:
            missing.update(_try_l2tp(pid))
        if "nflog" in wanted:
            missing.update(_try_nflog(pid))
        if "nat" in wanted:
            missing.update(_try_nat(pid))
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    missing = {f: why for f, why in missing.items() if f in wanted}
    return KernelReport(frozenset(wanted - set(missing)), missing)
