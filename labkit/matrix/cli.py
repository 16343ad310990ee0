"""``labkit matrix MATRIX.yaml`` and ``labkit matrix-merge DIR... --out DIR``."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from ..lab import stderr_progress
from . import cells as cells_mod
from . import export, results
from .spec import load_matrix

DEFAULT_OUT = ".labkit-artifacts/matrix"


def _summary(found: list[results.CellResult], out: Path) -> None:
    width = max((len(r.id) for r in found), default=10)
    for r in found:
        if r.status == "excluded":
            continue
        c = r.counts()
        line = f"{r.status.upper():<8} {r.id:<{width}}"
        if r.status != "not-run":
            line += f"  {r.time:6.0f} s  {c['passed']}/{len(r.tests)} passed"
        print(line + (f"  ({r.reason})" if r.reason and r.status not in ("pass",) else ""))
    totals = {s: sum(r.status == s for r in found) for s in results.STATUSES}
    print(", ".join(f"{n} {s}" for s, n in totals.items() if n))
    print(f"report: {out / 'report.html'}  junit: {out / 'junit.xml'}")


def _list(matrix, path: str) -> int:
    all_cells = cells_mod.product(matrix)
    runnable = [c for c in all_cells if c.runnable]
    with tempfile.TemporaryDirectory(prefix="labkit-matrix-") as tmp:  # the cells must validate to be listed as runnable
        dirs = cells_mod.materialise(matrix, all_cells, Path(tmp))
        runtime = {cid: cells_mod.read_cell(d)["runtime"] for cid, d in dirs.items()}
    print(f"{matrix.name} ({path}): {len(all_cells)} cells, {len(runnable)} to run, "
          f"{len(all_cells) - len(runnable)} excluded")
    width = max(len(c.id) for c in all_cells)
    for c in all_cells:
        if c.runnable:
            print(f"  run      {c.id:<{width}}  {runtime[c.id]}")
    for c in all_cells:
        if not c.runnable:
            print(f"  exclude  {c.id:<{width}}  {c.excluded.reason}")
    return 0


def cmd_matrix(args) -> int:
    matrix = load_matrix(args.matrix)
    if args.list:
        return _list(matrix, args.matrix)
    if args.export == "github":
        data, usage = export.github(matrix, args.matrix)
        print(usage, file=sys.stderr, end="")
        print(data)
        return 0
    if args.export == "gitlab":
        print(export.gitlab(matrix, args.matrix), end="")
        return 0
    from .run import run

    out = Path(args.out)
    _, found = run(matrix, out, args.cell, args.workers, args.sandbox, args.converge_timeout, stderr_progress)
    _summary(found, out.resolve())
    return 1 if any(r.status in results.FAILING for r in found) else 0


def cmd_merge(args) -> int:
    out = Path(args.out)
    _, found = export.merge([Path(d) for d in args.dirs], out, stderr_progress)
    _summary(found, out.resolve())
    return 1 if any(r.status in results.FAILING for r in found) else 0


def add_parser(sub) -> None:
    """Register ``matrix`` and ``matrix-merge`` on the ``labkit`` command's subparsers."""
    sp = sub.add_parser("matrix", help="run every combination of a matrix's axes as a real lab; HTML + JUnit report",
                        description="Run every cell of a matrix file (axes varying a base topology, minus exclusions) "
                                    "as a real lab with the matrix's tests, in one pytest session (cells in parallel, "
                                    "the VM sandbox when needed), and write report.html, junit.xml and results.json.")
    sp.add_argument("matrix", help="the matrix file (see docs/matrix.md)")
    sp.add_argument("--out", default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT}); cleared first")
    sp.add_argument("-n", dest="workers", type=int, default=None, metavar="N",
                    help="cells run in parallel (pytest-xdist; default: one per CPU, at most one per cell)")
    sp.add_argument("--cell", action="append", default=None, metavar="ID",
                    help="run only this cell (an id or a shell pattern; repeatable)")
    sp.add_argument("--list", action="store_true", help="list the cells (and the excluded ones with reasons); run nothing")
    sp.add_argument("--export", choices=("github", "gitlab"), default=None,
                    help="print the cells as a CI job matrix (GitHub Actions strategy.matrix JSON on stdout with "
                         "its usage on stderr, or GitLab CI 'parallel: matrix:' jobs); run nothing")
    sp.add_argument("--sandbox", choices=("auto", "on", "off"), default=None,
                    help="VM sandbox: auto (default, when this kernel lacks a feature), on, off; or $LABKIT_SANDBOX")
    sp.add_argument("--converge-timeout", type=float, default=None, help="seconds each lab may take to converge")
    sp.set_defaults(func=cmd_matrix)
    sp = sub.add_parser("matrix-merge", help="merge the output directories of matrix runs (CI jobs) into one report",
                        description="Fold the results.json and files of several 'labkit matrix' runs of one matrix "
                                    "(one CI job per cell) into one output directory with one report.html and junit.xml.")
    sp.add_argument("dirs", nargs="+", metavar="DIR", help="--out directories of the runs (or directories holding them)")
    sp.add_argument("--out", required=True, help="the merged output directory")
    sp.set_defaults(func=cmd_merge)

