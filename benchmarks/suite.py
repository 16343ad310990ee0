"""Benchmark: the wall time of the test suite (the README's test command), part by part.

    python3 benchmarks/suite.py [--topologies] [--json PATH] [-- PYTEST_ARGS ...]

Times ``python3 -m pytest tests`` (unit and integration tests on the host; one of them boots
the VM sandbox) and, with ``--topologies``, ``python3 -m pytest topologies --runtime
netns,docker`` (every topology on real daemons, in one VM sandbox boot where the host kernel
lacks GRE/ESP: the CI's long part). Each run writes a JUnit XML; its test counts and pytest's
own time are printed beside the wall time. Prints figures; asserts nothing (a failing suite is
reported, not hidden).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, write_json  # noqa: E402

PARTS = {
    "tests": ["tests", "-q", "-p", "no:cacheprovider"],
    "topologies": ["topologies", "-q", "-p", "no:cacheprovider", "--runtime", "netns,docker"],
}


def junit_counts(path: Path) -> dict:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return {}
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = lambda k: sum(int(s.get(k, 0)) for s in suites)  # noqa: E731
    return {"tests": total("tests"), "failures": total("failures"), "errors": total("errors"),
            "skipped": total("skipped"), "pytest_time_s": sum(float(s.get("time", 0)) for s in suites)}


def run_part(name: str, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="labkit-suite-") as tmp:
        junit = Path(tmp, "junit.xml")
        argv = [sys.executable, "-m", "pytest", *PARTS[name], *extra, f"--junitxml={junit}"]
        t0 = time.monotonic()
        rc = subprocess.run(argv, cwd=ROOT).returncode
        wall = time.monotonic() - t0
        return {"command": " ".join(["python3", "-m", "pytest", *PARTS[name], *extra]), "wall_s": wall, "exit_code": rc,
                **junit_counts(junit)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--topologies", action="store_true", help="also time the topology tests (long; boots the VM)")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("pytest_args", nargs="*", help="after --: passed to every pytest run")
    args = ap.parse_args()
    rows = {name: run_part(name, args.pytest_args) for name in (["tests", "topologies"] if args.topologies else ["tests"])}
    print("\nsuite wall time")
    for name, r in rows.items():
        print(f"  {r['command']:<70} {r['wall_s']:7.1f}s  exit {r['exit_code']}  "
              f"({r.get('tests', '?')} tests, {r.get('failures', '?')} failed, {r.get('errors', '?')} errors, "
              f"{r.get('skipped', '?')} skipped)")
    if len(rows) > 1:
        print(f"  {'total':<70} {sum(r['wall_s'] for r in rows.values()):7.1f}s")
    write_json(args.json, {"suite": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
