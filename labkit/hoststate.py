"""The host's own network state, snapshotted so a test can prove that labs did not touch it.

A lab lives in namespaces (or containers) of its own; the host's namespace must come out of a
session as it went in. A snapshot holds the host's links, addresses, routes and rules (all
tables, both families), IPsec (xfrm) states and policies, firewall rules (iptables and
ip6tables, counters dropped), ``net.*`` sysctls (global, ``all`` and ``default``; not
per-device), and the entries of ``/run/netns``.

What is not labkit's is not reported: the fallback devices a kernel creates in every namespace
when a tunnel module loads (``gre0``, ``ip_vti0`` ...), sysctl keys that appear with a module,
and values the kernel changes on its own (counters, hash seeds).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

# created by the kernel in *every* namespace when ip_gre, ip_vti, ipip, sit ... load
FALLBACK_DEVICES = frozenset({"gre0", "gretap0", "erspan0", "ip_vti0", "ip6_vti0", "ip6tnl0", "ip6gre0",
                              "ip6erspan0", "sit0", "tunl0"})
SYSCTL_ROOT = Path("/proc/sys/net")
# per-device trees (only all/default kept) and values that change without anyone configuring them
_SYSCTL_SKIP = re.compile(r"^(ipv[46]/(conf|neigh)/(?!all/|default/)|ipv6/conf/(all|default)/stable_secret$"
                          r"|netfilter/nf_conntrack_count$|.*/flush$|ipv4/tcp_fastopen_key$|core/netdev_rss_key$"
                          r"|unix/max_dgram_qlen$|nf_conntrack_max$|netfilter/nf_conntrack_max$"
                          r"|netfilter/nf_conntrack_buckets$|netfilter/nf_conntrack_expect_max$)")
_COUNTERS = re.compile(r"\[\d+:\d+\]")


def _run(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"<{argv[0]}: {exc}>"
    return proc.stdout if proc.returncode == 0 else f"<{' '.join(argv)} failed: {proc.stderr.strip()}>"


def _sysctls() -> dict[str, str]:
    out = {}
    for dirpath, _, files in os.walk(SYSCTL_ROOT):
        for name in files:
            path = Path(dirpath, name)
            key = str(path.relative_to(SYSCTL_ROOT))
            if _SYSCTL_SKIP.match(key):
                continue
            try:
                out[key] = path.read_text().strip()
            except OSError:  # write-only or unreadable keys
                continue
    return out


def _netlink() -> dict[str, set]:
    from pyroute2 import IPRoute

    state: dict[str, set] = {"links": set(), "addresses": set(), "routes": set(), "rules": set()}
    with IPRoute() as ipr:
        names = {}
        for link in ipr.get_links():
            name = link.get_attr("IFLA_IFNAME")
            names[link["index"]] = name
            if name in FALLBACK_DEVICES:
                continue
            info = link.get_attr("IFLA_LINKINFO")
            kind = info.get_attr("IFLA_INFO_KIND") if info else None
            state["links"].add((name, kind, link.get_attr("IFLA_MTU"), bool(link["flags"] & 1),
                                link.get_attr("IFLA_ADDRESS"), link.get_attr("IFLA_MASTER")))
        for addr in ipr.get_addr():
            state["addresses"].add((names.get(addr["index"]), addr.get_attr("IFA_ADDRESS"), addr["prefixlen"]))
        for family in (2, 10):
            for route in ipr.route("dump", family=family):  # every table
                oif = names.get(route.get_attr("RTA_OIF"))
                if oif in FALLBACK_DEVICES:
                    continue
                state["routes"].add((family, route.get_attr("RTA_TABLE"), route.get_attr("RTA_DST"), route["dst_len"],
                                     route.get_attr("RTA_GATEWAY"), oif, route["type"], route["proto"]))
            for rule in ipr.get_rules(family=family):
                state["rules"].add((family, rule.get_attr("FRA_PRIORITY"), rule.get_attr("FRA_TABLE"),
                                    rule.get_attr("FRA_SRC"), rule.get_attr("FRA_DST"), rule.get_attr("FRA_FWMARK")))
    return state


def snapshot() -> dict[str, object]:
    """The host namespace's network state now (run it in the host's namespace)."""
    snap: dict[str, object] = dict(_netlink())
    snap["xfrm state"] = _run(["ip", "xfrm", "state"])
    snap["xfrm policy"] = _run(["ip", "xfrm", "policy"])
    for tool in ("iptables-save", "ip6tables-save"):
        text = _run([tool])
        snap[tool] = [_COUNTERS.sub("", line) for line in text.splitlines() if line and not line.startswith("#")]
    snap["sysctls"] = _sysctls()
    netns = Path("/run/netns")
    snap["/run/netns"] = set(os.listdir(netns)) if netns.is_dir() else set()
    return snap


def diff(before: dict[str, object], after: dict[str, object]) -> list[str]:
    """What changed between two snapshots, one line each; empty when the host is untouched."""
    out = []
    for key, old in before.items():
        new = after.get(key)
        if isinstance(old, set):
            out += [f"{key}: added {item}" for item in sorted(new - old, key=repr)]
            out += [f"{key}: removed {item}" for item in sorted(old - new, key=repr)]
        elif isinstance(old, dict):
            out += [f"sysctl net.{k.replace('/', '.')}: {v!r} -> {new.get(k)!r}" for k, v in sorted(old.items())
                    if new.get(k) != v]
        elif old != new:
            if isinstance(old, list):
                out += [f"{key}: added {line!r}" for line in new if line not in old]
                out += [f"{key}: removed {line!r}" for line in old if line not in new]
            else:
                out.append(f"{key}: {old!r} -> {new!r}")
    return out
