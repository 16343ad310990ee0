"""Benchmark: how long each phase of lab-up takes (validate, create, wire, daemons, converge).

    python3 benchmarks/lab_up.py [TOPOLOGY_DIR] [--rounds N] [--runtime netns|docker] [--json PATH]

Prints figures; asserts nothing. When the host kernel lacks what the topology needs, the
benchmark re-runs itself inside the VM sandbox (and says so), like the tests and the CLI do.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from labkit.lab import PHASES, Lab, stderr_progress
from labkit.load import load
from labkit.runtime import RUNTIMES
from labkit.sandbox import dockerd, vm


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("topology", nargs="?", default="topologies/dmvpn_phase2")
    ap.add_argument("--rounds", type=int, default=2, help="lab-ups to time (the first is cold)")
    ap.add_argument("--sandbox", choices=("auto", "on", "off"), default=None)
    ap.add_argument("--runtime", choices=RUNTIMES, default="netns")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    decision = vm.decide(load(args.topology).required_kernel_features(), args.sandbox or vm.mode_from_env())
    print(f"labkit benchmark: mode: {decision}", flush=True)
    if decision.use:
        argv = [sys.executable, os.path.abspath(__file__), args.topology, "--rounds", str(args.rounds),
                "--sandbox", "off", "--runtime", args.runtime]
        argv += ["--json", os.path.abspath(args.json)] if args.json else []
        extra_env = dockerd.guest_env([args.runtime], [load(args.topology)], progress=stderr_progress)
        return vm.run(argv, progress=stderr_progress, extra_env=extra_env)
    rows = []
    for i in range(args.rounds):
        t0 = time.monotonic()
        lab = Lab.from_path(args.topology, runtime=args.runtime)
        with lab:
            total = time.monotonic() - t0
        rows.append({**lab.timings, "total": total, "teardown": time.monotonic() - t0 - total})
        print(f"round {i + 1}: " + "  ".join(f"{k} {v:6.2f}s" for k, v in rows[-1].items()), flush=True)
    print(f"\n{'phase':<10} {'first':>8} {'median':>8}   ({args.rounds} rounds, {len(load(args.topology).nodes)} nodes, "
          f"{args.runtime} runtime)")
    for phase in (*PHASES, "total", "teardown"):
        values = [r.get(phase, 0.0) for r in rows]
        print(f"{phase:<10} {values[0]:8.2f} {statistics.median(values):8.2f}")
    if args.json:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from _common import write_json

        write_json(args.json, {"lab_up": {"topology": load(args.topology).name, "runtime": args.runtime,
                                          "rounds": rows}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
