"""Benchmark: the VM sandbox's boot, from ``vm.run`` to the guest having run a trivial command.

    python3 benchmarks/sandbox_boot.py [--rounds N] [--json PATH]

Each round is one whole sandbox run of a trivial command: virtme-ng and qemu start, the guest
kernel boots the host's root file system over 9p, loads the lab's kernel modules, runs
``cat /proc/uptime`` and powers off. The guest's uptime at that moment splits the round into
time inside the guest (kernel, init, module loading) and the rest (virtme-ng preparing the
initramfs, qemu starting, power-off). Also states whether KVM is usable here (labkit's bounded,
cached probe decides).
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, progress, write_json  # noqa: E402

from labkit.sandbox import vm  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    kernel, release = vm.find_kernel()
    kvm_ok, kvm_why = vm.kvm_works(kernel, progress)
    accel = "KVM" if kvm_ok else "TCG (software emulation)"
    dev_kvm = "present" if os.path.exists("/dev/kvm") else "absent"
    print(f"sandbox boot: kernel {release}, {accel}: {kvm_why}; /dev/kvm {dev_kvm}", flush=True)
    times, codes, uptimes = [], [], []
    for i in range(args.rounds):
        console = io.BytesIO()
        t0 = time.monotonic()
        rc = vm.run(["cat", "/proc/uptime"], cwd=str(ROOT), console=console, progress=progress)
        times.append(time.monotonic() - t0)
        codes.append(rc)
        try:
            uptimes.append(float(console.getvalue().decode(errors="replace").split()[-2]))
        except (IndexError, ValueError):
            uptimes.append(None)
        up = f"{uptimes[-1]:.1f}s" if uptimes[-1] is not None else "?"
        print(f"round {i + 1}: {times[-1]:.1f}s for a fresh VM to run the command (guest uptime then: {up}; "
              f"exit code {rc})", flush=True)
    print(f"\nsandbox boot to a command: median {statistics.median(times):.1f}s, min {min(times):.1f}s, "
          f"max {max(times):.1f}s over {len(times)} rounds ({accel}, {os.cpu_count()} vCPU)")
    write_json(args.json, {"sandbox_boot": {"rounds_s": times, "exit_codes": codes,
                                            "median_s": statistics.median(times), "min_s": min(times),
                                            "guest_uptime_at_command_s": uptimes,
                                            "accel": "kvm" if kvm_ok else "tcg", "kvm_reason": kvm_why,
                                            "dev_kvm": dev_kvm, "guest_kernel": release}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
