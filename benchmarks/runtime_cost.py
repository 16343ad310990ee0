"""Benchmark: per-node cost of each runtime: create, daemon start, memory and teardown.

    python3 benchmarks/runtime_cost.py [--nodes N] [--runtimes netns,docker]

For each runtime it creates N empty nodes, starts zebra in each (as a lab does) and waits until
every zebra serves its vty socket, reads the memory of every node's processes (PSS, so shared
libraries are split fairly), then tears the nodes down. Needs no tunnel: runs on the host
kernel. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from labkit.expand.frr import CONF_DIR, daemon
from labkit.runtime import make_runtime, runtime_list
from labkit.runtime import ns
from labkit.wait import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pss_kib  # noqa: E402


def parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def measure(name: str, count: int) -> dict[str, float]:
    lab_id = f"bench{os.getpid() % 10000}"
    rt = make_runtime(name, lab_id)
    nodes = {f"n{i}": {"net.ipv4.ip_forward": "1"} for i in range(count)}
    zebra = daemon("zebra", 2)
    try:
        t0 = time.monotonic()
        rt.create_all(nodes)
        created = time.monotonic()
        for node in nodes:
            rt.write_file(node, f"{CONF_DIR}/zebra.conf", f"hostname {node}\n")
            rt.start(node, list(zebra.argv), log="/run/labkit/log/zebra.out")
        wait_until(lambda: all(os.path.exists(rt.node_path(n, zebra.ready)) for n in nodes), 300,
                   f"zebra serving on {count} {name} nodes")
        started = time.monotonic()
        node_kib = holder_kib = 0
        for node in nodes:
            pid = rt.pid(node)
            members = ns.pids_in_netns(ns.netns_inode(pid))
            node_kib += sum(pss_kib(p) for p in members)
            if name == "docker":  # the per-container containerd-shim lives outside the node's netns
                holder_kib += pss_kib(parent(pid))
    finally:
        t1 = time.monotonic()
        rt.destroy()
        down = time.monotonic() - t1
    return {"create ms": (created - t0) / count * 1000, "zebra start ms": (started - created) / count * 1000,
            "node MiB": node_kib / count / 1024, "shim MiB": holder_kib / count / 1024,
            "teardown ms": down / count * 1000}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--runtimes", type=runtime_list, default=["netns", "docker"])
    args = ap.parse_args()
    rows = {}
    for name in args.runtimes:
        print(f"labkit benchmark: {name}: {args.nodes} nodes ...", file=sys.stderr, flush=True)
        rows[name] = measure(name, args.nodes)
    cols = list(next(iter(rows.values())))
    print(f"\nper node, {args.nodes} nodes, kernel {os.uname().release}")
    print(f"{'runtime':<8}" + "".join(f"{c:>16}" for c in cols))
    for name, row in rows.items():
        print(f"{name:<8}" + "".join(f"{row[c]:16.1f}" for c in cols))
    return 0


if __name__ == "__main__":
    sys.exit(main())
