"""Run every benchmark, gather the figures into ``docs/benchmarks.json``, and draw ``docs/benchmarks.png``.

    python3 benchmarks/run_all.py [--parts native,boot,vm,suite] [--spokes 10 25 50 100]
                                  [--until HH:MM] [--vm-lock PATH]

Parts (each writes its figures under ``.labkit-artifacts/benchmarks/``; the parts not run keep
their previous figures in ``docs/benchmarks.json``):

- ``native``: ``raw_baseline.py`` on the routed lab (``tests/data/routed``), on the host kernel;
- ``boot``: ``sandbox_boot.py`` (one VM boot per round);
- ``vm``: ONE VM boot running ``raw_baseline.py topologies/dmvpn_phase2`` (its labkit rounds are
  also the lab-up breakdown) and then ``scale.py`` for each N;
- ``suite``: ``suite.py`` (the host test suite's wall time, and the last CI run's, if any).

``--vm-lock PATH`` runs each part that boots a VM under ``flock PATH`` (machines where several
people share one VM). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, progress  # noqa: E402

BENCH = ROOT / "benchmarks"
PARTS = ROOT / ".labkit-artifacts" / "benchmarks"
DOC_JSON = ROOT / "docs" / "benchmarks.json"
FILES = {"native": ["raw_routed.json"], "boot": ["boot.json"], "vm": ["lab_up.json", "raw_dmvpn.json", "scale.json"],
         "suite": ["suite.json"]}
# the targets, as printed figures
TARGETS = {
    "labkit_over_raw": 1.10, "wire_ms_per_node": 10.0, "scale_spokes": 100, "sandbox_boot_s": 20.0,
    "dmvpn_phase2_up_s": 60.0,
}


def _py(script: str, *args: str) -> list[str]:
    return [sys.executable, str(BENCH / script), *args]


def _run(argv: list[str], lock: str | None) -> int:
    argv = (["flock", lock] if lock else []) + argv
    progress("running " + " ".join(argv))
    return subprocess.run(argv, cwd=ROOT).returncode


def guest(args) -> int:
    """Inside the one VM boot of the ``vm`` part: the DMVPN baseline, then the scale runs."""
    # first, while every daemon binary is still cold in the guest: lab-up right after boot
    rc = subprocess.run(_py("lab_up.py", str(ROOT / "topologies/dmvpn_phase2"), "--rounds", "1", "--sandbox", "off",
                            "--json", str(PARTS / "lab_up.json"))).returncode
    rc |= subprocess.run(_py("raw_baseline.py", str(ROOT / "topologies/dmvpn_phase2"), "--rounds",
                            str(args.rounds), "--sandbox", "off", "--json", str(PARTS / "raw_dmvpn.json"))).returncode
    until = ["--until", args.until] if args.until else []
    rc |= subprocess.run(_py("scale.py", *map(str, args.spokes), "--sandbox", "off", *until,
                             "--json", str(PARTS / "scale.json"))).returncode
    return rc


def _load(name: str) -> dict | None:
    try:
        return json.loads((PARTS / name).read_text())
    except (OSError, ValueError):
        return None


def _verdict(value, limit, lower_is_better=True) -> dict:
    if value is None:
        return {"value": None, "target": limit, "met": None}
    return {"value": value, "target": limit, "met": value <= limit if lower_is_better else value >= limit}


def merge(ran: list[str]) -> dict:
    """Fold the parts into docs/benchmarks.json (keeping previous figures of parts not run)."""
    try:
        doc = json.loads(DOC_JSON.read_text())
    except (OSError, ValueError):
        doc = {}
    found = {n: _load(n) for part in FILES for n in FILES[part]}
    if found["raw_routed.json"]:
        doc.setdefault("raw_baseline", {})["routed"] = found["raw_routed.json"]
    if found["raw_dmvpn.json"]:
        raw = found["raw_dmvpn.json"]
        doc.setdefault("raw_baseline", {})["dmvpn_phase2"] = raw
    up = lambda r: sum(r.get(p, 0.0) for p in ("validate", "create", "wire", "daemons", "converge"))  # noqa: E731
    if found["lab_up.json"] or found["raw_dmvpn.json"]:
        cold = found["lab_up.json"]
        warm = found["raw_dmvpn.json"]["raw_baseline"]["rounds_labkit"] if found["raw_dmvpn.json"] else []
        doc["lab_up"] = {"topology": "dmvpn_phase2",
                         "where": (cold or found["raw_dmvpn.json"])["where"],
                         "measured_at": (cold or found["raw_dmvpn.json"])["measured_at"],
                         "first_after_boot": cold["lab_up"]["rounds"][0] if cold else None,
                         "first_after_boot_total_s": up(cold["lab_up"]["rounds"][0]) if cold else None,
                         "later_rounds": warm, "later_best_total_s": min((up(r) for r in warm), default=None)}
    if found["scale.json"]:
        doc["scale"] = found["scale.json"]
    if found["boot.json"]:
        doc["sandbox_boot"] = found["boot.json"]
    if found["suite.json"]:
        doc["suite"] = found["suite.json"]
    doc["targets"] = targets(doc)
    doc["generated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    doc["parts_run_last"] = ran
    DOC_JSON.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return doc


def _per_node(rb: dict | None) -> None:
    """Wiring per node counts every holder, nodes and segments alike (the same as scale.py)."""
    if rb:
        holders = rb["nodes"] + rb.get("segments", 0)
        rb["wire_ms_per_node"] = {who: rb["phases"]["wire"][f"{who}_s"] / holders * 1000 for who in ("raw", "labkit")}


def targets(doc: dict) -> dict:
    rb = doc.get("raw_baseline", {})
    dm = (rb.get("dmvpn_phase2") or {}).get("raw_baseline")
    routed = (rb.get("routed") or {}).get("raw_baseline")
    _per_node(dm)
    _per_node(routed)
    scale = [r for r in (doc.get("scale") or {}).get("scale", []) if r.get("ok")]
    boot = (doc.get("sandbox_boot") or {}).get("sandbox_boot")
    lab_up = doc.get("lab_up")
    return {
        "labkit_over_raw_dmvpn_phase2_vm": _verdict(dm and dm["phases"]["total"]["ratio"], TARGETS["labkit_over_raw"]),
        "labkit_over_raw_routed_native": _verdict(routed and routed["phases"]["total"]["ratio"],
                                                  TARGETS["labkit_over_raw"]),
        "wire_ms_per_node_dmvpn_phase2_vm": _verdict(dm and dm["wire_ms_per_node"]["labkit"], TARGETS["wire_ms_per_node"]),
        "wire_ms_per_node_routed_native": _verdict(routed and routed["wire_ms_per_node"]["labkit"],
                                                   TARGETS["wire_ms_per_node"]),
        "wire_ms_per_node_largest_scale_vm": _verdict(scale[-1]["wire_ms_per_node"] if scale else None,
                                                      TARGETS["wire_ms_per_node"]),
        "spokes_registered_with_sa_vm": _verdict(max((r["spokes"] for r in scale), default=None),
                                                 TARGETS["scale_spokes"], lower_is_better=False),
        "sandbox_boot_s": _verdict(boot and boot["median_s"], TARGETS["sandbox_boot_s"]),
        "dmvpn_phase2_first_up_after_boot_s_vm": _verdict(lab_up and lab_up["first_after_boot_total_s"],
                                                          TARGETS["dmvpn_phase2_up_s"]),
        "dmvpn_phase2_later_up_s_vm": _verdict(lab_up and lab_up["later_best_total_s"], TARGETS["dmvpn_phase2_up_s"]),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="native,boot,vm,suite")
    ap.add_argument("--spokes", nargs="+", type=int, default=[10, 25, 50, 100])
    ap.add_argument("--rounds", type=int, default=2, help="rounds of the DMVPN baseline in the VM")
    ap.add_argument("--boot-rounds", type=int, default=2)
    ap.add_argument("--until", help="UTC HH:MM after which scale.py starts no further N")
    ap.add_argument("--vm-lock", help="flock this file around every part that boots a VM")
    ap.add_argument("--memory", default="8G", help="memory of the VM of the 'vm' part")
    ap.add_argument("--suite-args", default="", help="extra pytest arguments for suite.py (space-separated)")
    ap.add_argument("--guest", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.guest:
        return guest(args)
    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - set(FILES)
    if unknown:
        ap.error(f"unknown part(s) {', '.join(sorted(unknown))}; parts: {', '.join(FILES)}")
    PARTS.mkdir(parents=True, exist_ok=True)
    rc = 0
    for part in parts:
        for name in FILES[part]:
            (PARTS / name).unlink(missing_ok=True)  # never merge a stale figure as a fresh one
        if part == "native":
            rc |= _run(_py("raw_baseline.py", str(ROOT / "tests/data/routed"), "--rounds", "10", "--sandbox", "off",
                           "--json", str(PARTS / "raw_routed.json")), None)
        elif part == "boot":
            rc |= _run(_py("sandbox_boot.py", "--rounds", str(args.boot_rounds), "--json", str(PARTS / "boot.json")),
                       args.vm_lock)
        elif part == "vm":
            inner = [sys.executable, str(BENCH / "run_all.py"), "--guest", "--rounds", str(args.rounds),
                     "--spokes", *map(str, args.spokes)] + (["--until", args.until] if args.until else [])
            code = ("import sys; from labkit.sandbox import vm; from labkit.lab import stderr_progress; "
                    f"sys.exit(vm.run({inner!r}, cwd={str(ROOT)!r}, memory={args.memory!r}, "
                    "progress=stderr_progress))")
            rc |= _run([sys.executable, "-c", code], args.vm_lock)
        elif part == "suite":
            extra = args.suite_args.split()
            rc |= _run(_py("suite.py", "--json", str(PARTS / "suite.json"), *(["--", *extra] if extra else [])),
                       args.vm_lock)
    doc = merge(parts)
    print("\ntargets (docs/benchmarks.json):")
    for name, v in doc["targets"].items():
        state = {True: "met", False: "NOT met", None: "not measured"}[v["met"]]
        value = f"{v['value']:.2f}" if isinstance(v["value"], float) else v["value"]
        print(f"  {name:<42} {str(value):>10}  (target {v['target']})  {state}")
    rc |= subprocess.run(_py("plot.py")).returncode
    return 1 if rc else 0


if __name__ == "__main__":
    sys.exit(main())
