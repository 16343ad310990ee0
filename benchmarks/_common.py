"""Helpers shared by the benchmarks: memory of a node, figures written as JSON, the VM re-run.

Benchmarks print figures and assert nothing. ``--json PATH`` makes one also write its figures
(``benchmarks/run_all.py`` gathers them into ``docs/benchmarks.json``).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

from labkit.runtime import ns

ROOT = Path(__file__).resolve().parent.parent


def pss_kib(pid: int) -> int:
    """Proportional set size of one process (shared pages split among their users)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def node_pss_kib(holder: int) -> int:
    """PSS of every process in the network namespace of ``holder`` (its daemons and the holder)."""
    return sum(pss_kib(p) for p in ns.pids_in_netns(ns.netns_inode(holder)))


def where() -> dict:
    """Where a figure was measured: VM sandbox or native, kernel, CPUs."""
    from labkit.sandbox import vm

    return {"where": "VM sandbox (TCG)" if vm.inside() else "native (host kernel)",
            "kernel": os.uname().release, "cpus": os.cpu_count(), "python": platform.python_version(),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def write_json(path: str | None, figures: dict) -> None:
    """Write ``figures`` (plus where they were measured) to ``path``, if given."""
    if not path:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_text(json.dumps({**figures, **where()}, indent=2, sort_keys=True) + "\n")
    tmp.replace(target)


def progress(message: str) -> None:
    print(f"benchmark: {message}", file=sys.stderr, flush=True)
