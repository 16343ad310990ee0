"""Scale out: the matrix as a CI system's own job matrix, and the merge of the jobs' results.

Each CI job runs ``labkit matrix FILE --cell ID --out DIR`` for its cell; a last job runs
``labkit matrix-merge DIR... --out REPORT_DIR``, which folds the jobs' ``results.json`` and
files into one output directory with one ``report.html`` and one ``junit.xml``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from ..errors import LabkitError
from . import results
from .cells import product
from .run import SESSION_LOG, prepare_out, write_all
from .spec import Matrix

OUT_ROOT = "labkit-matrix"  # where CI jobs put their cell's output directory


def github(matrix: Matrix, path: str) -> tuple[str, str]:
    """``(strategy.matrix JSON, how to use it)``: the JSON is one line for ``$GITHUB_OUTPUT``."""
    cells = [c.id for c in product(matrix) if c.runnable]
    data = json.dumps({"include": [{"cell": c} for c in cells]}, separators=(",", ":"))
    cell = "${{ matrix.cell }}"
    usage = f"""# GitHub Actions: one job per cell of {path} ({len(cells)} cells), then one merge job.
# Print the matrix in a first job and feed it to the cell jobs:
#   jobs:
#     plan:
#       runs-on: ubuntu-latest
#       outputs:
#         matrix: ${{{{ steps.m.outputs.matrix }}}}
#       steps:
#         - uses: actions/checkout@v4
#         - run: pip install -e .
#         - id: m
#           run: echo "matrix=$(labkit matrix {path} --export github)" >> "$GITHUB_OUTPUT"
#     cell:
#       needs: plan
#       runs-on: ubuntu-latest
#       strategy:
#         fail-fast: false
#         matrix: ${{{{ fromJSON(needs.plan.outputs.matrix) }}}}
#       steps:
#         - uses: actions/checkout@v4
#         - run: sudo bash scripts/setup.sh
#         - run: sudo -E labkit matrix {path} --cell "{cell}" --out "{OUT_ROOT}/{cell}"
#         - uses: actions/upload-artifact@v4
#           if: always()
#           with:
#             name: {OUT_ROOT}-{cell}
#             path: {OUT_ROOT}/{cell}
#     report:
#       needs: cell
#       if: always()
#       runs-on: ubuntu-latest
#       steps:
#         - uses: actions/checkout@v4
#         - run: sudo apt-get install -y graphviz && pip install -e .
#         - uses: actions/download-artifact@v4
#           with:
#             pattern: {OUT_ROOT}-*
#             path: {OUT_ROOT}
#         - run: labkit matrix-merge {OUT_ROOT}/* --out {OUT_ROOT}-report
#         - uses: actions/upload-artifact@v4
#           if: always()
#           with:
#             name: {OUT_ROOT}-report
#             path: {OUT_ROOT}-report
"""
    return data, usage


def gitlab(matrix: Matrix, path: str) -> str:
    """Two GitLab CI jobs: the cells as ``parallel: matrix:`` and the merge (valid YAML, with comments)."""
    cells = [c.id for c in product(matrix) if c.runnable]
    jobs = {
        "labkit-matrix-cell": {
            "stage": "test",
            "parallel": {"matrix": [{"CELL": cells}]},
            "script": ["bash scripts/setup.sh",
                       f'labkit matrix {path} --cell "$CELL" --out "{OUT_ROOT}/$CELL"'],
            "artifacts": {"when": "always", "paths": [f"{OUT_ROOT}/"]},
        },
        "labkit-matrix-report": {
            "stage": ".post",
            "when": "always",
            "needs": [{"job": "labkit-matrix-cell", "artifacts": True}],
            "script": ["pip install -e .", f"labkit matrix-merge {OUT_ROOT}/* --out {OUT_ROOT}-report"],
            "artifacts": {"when": "always", "paths": [f"{OUT_ROOT}-report/"],
                          "reports": {"junit": f"{OUT_ROOT}-report/junit.xml"}},
        },
    }
    head = (f"# labkit matrix {matrix.name} ({path}): {len(cells)} cells, one job each, then one merge job.\n"
            "# Include this in .gitlab-ci.yml; the cell jobs need root and the packages scripts/setup.sh installs\n"
            "# (the VM sandbox boots where the runner's kernel lacks GRE/ESP).\n")
    return head + yaml.safe_dump(jobs, sort_keys=False, default_flow_style=False, width=120)


def _sources(dirs: list[Path]) -> list[Path]:
    """Output directories among ``dirs``: each itself, or its subdirectories that hold results."""
    found = []
    for d in dirs:
        if (d / results.RESULTS).is_file():
            found.append(d)
        elif d.is_dir() and (subs := sorted(p.parent for p in d.glob(f"*/{results.RESULTS}"))):
            found += subs
        else:
            raise LabkitError(f"{d} holds no {results.RESULTS}: pass the --out directories of 'labkit matrix' runs")
    return list(dict.fromkeys(found))


def merge(dirs: list[Path], out: Path, progress=lambda m: None) -> tuple[dict, list[results.CellResult]]:
    """Fold the results of several runs of one matrix (CI jobs) into ``out``; files are copied.

    A runnable cell no run ran is an error of the merged run; a cell two runs ran is refused.
    """
    out = out.resolve()
    sources = _sources([Path(d).resolve() for d in dirs])
    if out in sources:
        raise LabkitError(f"--out {out} is one of the directories to merge: name a new one")
    loaded = [(src, *results.read_results(src)) for src in sources]
    first = loaded[0][1]
    for src, header, _ in loaded[1:]:
        if (header["matrix"], header["axes"]) != (first["matrix"], first["axes"]):
            raise LabkitError(f"{src} holds matrix {header['matrix']!r} with other axes than {loaded[0][0]} "
                              f"({first['matrix']!r}): merge runs of one matrix only")
    prepare_out(out)
    merged: dict[str, results.CellResult] = {}
    ran_in: dict[str, Path] = {}
    session_logs = []
    for n, (src, header, cells) in enumerate(loaded):
        log = None
        if (src / SESSION_LOG).exists():
            log = f"sessions/{n:02d}-{src.name}.log"
            (out / "sessions").mkdir(exist_ok=True)
            shutil.copy2(src / SESSION_LOG, out / log)
            session_logs.append(log)
        for cell in cells:
            if cell.status == "not-run":
                merged.setdefault(cell.id, cell)
                continue
            if cell.status != "excluded":
                if cell.id in ran_in:
                    raise LabkitError(f"cell {cell.id} ran in both {ran_in[cell.id]} and {src}: merge one run of each cell")
                ran_in[cell.id] = src
                _copy_cell(src, out, cell)
                cell.files["session"] = log or ""
            if merged.get(cell.id) is None or merged[cell.id].status == "not-run":
                merged[cell.id] = cell
    order = [c.id for c in loaded[0][2]]
    found = [merged[i] for i in order]
    for cell in found:
        if cell.status == "not-run":
            cell.status, cell.reason = "error", "no merged run ran this cell (did its job end before writing results?)"
    header = {**first, **header_of_merge(first, len(sources), session_logs)}
    write_all(out, header, found)
    progress(f"merged {len(sources)} run(s): {len(ran_in)} cell(s) ran, "
             f"{sum(c.status == 'error' and not c.tests for c in found)} not run by any, "
             f"{sum(c.status == 'excluded' for c in found)} excluded")
    return header, found


def header_of_merge(first: dict, n: int, session_logs: list[str]) -> dict:
    import datetime

    return {"generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "wall_time": None, "session_logs": session_logs, "merged_from": n}


def _copy_cell(src: Path, out: Path, cell: results.CellResult) -> None:
    for rel in (Path("cells") / cell.id, Path("artifacts") / cell.lab):
        if (src / rel).is_dir():
            shutil.copytree(src / rel, out / rel, dirs_exist_ok=True)

