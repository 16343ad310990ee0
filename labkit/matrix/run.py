"""Run a matrix: materialise its cells, one pytest session over them, results and reports.

The session is an ordinary ``python -m pytest`` over the cell directories, started in the output
directory, so the labkit plugin does what it does for any topology: it boots the VM sandbox once
when this kernel lacks GRE/ESP (the output directory is shared with the VM), pins each cell's
tests to the cell's runtime (``cell.json``) and saves each lab's logs under ``artifacts/``.
Cells run in parallel with pytest-xdist, ``--dist loadfile`` keeping every module (and so its
module-scoped lab) on one worker.
"""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from ..errors import LabkitError, PrerequisiteError
from . import cells as cells_mod
from . import report, results
from .spec import Matrix

MARKER = ".labkit-matrix"  # an output directory this module may clear
SESSION_LOG = "session.log"
PYTEST_JUNIT = "pytest-junit.xml"
JUNIT = "junit.xml"
OWNED = ("cells", "artifacts")
OWNED_FILES = (results.RESULTS, JUNIT, report.REPORT, PYTEST_JUNIT, SESSION_LOG, "pytest.ini")
PYTEST_INI = "[pytest]\n# written by labkit matrix: the cells' session does not depend on where they sit\naddopts = -ra\n"


def prepare_out(out: Path) -> None:
    """Make ``out`` an empty matrix output directory; refuse one holding anything else."""
    if out.exists() and not out.is_dir():
        raise LabkitError(f"--out {out} is a file: name a directory")
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise LabkitError(f"--out {out} is not empty and was not written by labkit matrix: name a new or empty directory")
    for name in OWNED:
        shutil.rmtree(out / name, ignore_errors=True)
    for name in OWNED_FILES:
        (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by labkit matrix; cleared by its next run\n")


def runtimes_of(dirs: dict[str, Path]) -> list[str]:
    found = {cells_mod.read_cell(d)["runtime"] for d in dirs.values()}
    return [r for r in ("netns", "docker") if r in found]


def default_workers(n_cells: int) -> int:
    return max(1, min(n_cells, os.cpu_count() or 1))


def pytest_argv(cell_dirs: list[str], runtimes: list[str], workers: int, sandbox: str | None = None,
                converge_timeout: float | None = None) -> list[str]:
    """The session over the cells, relative to the output directory it runs in."""
    argv = [sys.executable, "-m", "pytest", "-c", "pytest.ini", "--rootdir", ".", "-p", "no:cacheprovider",
            "--import-mode=importlib", "-v", f"--junitxml={PYTEST_JUNIT}", "--lab-artifacts", "artifacts",
            "--keep-logs", "--keep-pcaps", "--runtime", ",".join(runtimes)]
    if workers > 1:
        argv += ["-n", str(workers), "--dist", "loadfile"]
    if sandbox:
        argv += ["--sandbox", sandbox]
    if converge_timeout:
        argv += ["--converge-timeout", str(converge_timeout)]
    return argv + cell_dirs


def _stream(argv: list[str], cwd: Path, log: Path) -> int:
    """Run the session; its output goes to our stderr (progress) and to the session log."""
    with open(log, "wb") as keep:
        proc = subprocess.Popen(argv, cwd=str(cwd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        try:
            for chunk in iter(lambda: proc.stdout.read1(65536), b""):
                sys.stderr.buffer.write(chunk)
                sys.stderr.buffer.flush()
                keep.write(chunk)
            return proc.wait()
        except BaseException:  # Ctrl-C reaches pytest too (same process group): let it tear its labs down
            proc.wait()
            raise


def header_of(matrix: Matrix, **extra) -> dict:
    source = matrix.source
    try:
        source = source.relative_to(Path.cwd())
    except ValueError:
        pass
    return {"matrix": matrix.name, "source": str(source), "description": matrix.description.strip(),
            "axes": {a: list(v) for a, v in matrix.axes.items()},
            "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"), **extra}


def run(matrix: Matrix, out: Path, wanted: list[str] | None = None, workers: int | None = None,
        sandbox: str | None = None, converge_timeout: float | None = None,
        progress: Callable[[str], None] = lambda m: None) -> tuple[dict, list[results.CellResult]]:
    """Run the selected cells (all runnable ones by default) and write every report into ``out``.

    Raises:
        MatrixError: an invalid matrix selection or cell topology (before anything starts).
        PrerequisiteError: pytest-xdist missing for a parallel run.
    """
    out = out.resolve()
    all_cells = cells_mod.product(matrix)
    chosen = cells_mod.select(all_cells, wanted)
    workers = workers or default_workers(len(chosen))
    if workers > 1:
        try:
            import xdist  # noqa: F401
        except ImportError:
            raise PrerequisiteError("running cells in parallel needs pytest-xdist: pip install pytest-xdist "
                                    "(or run them one by one with -n 1)") from None
    prepare_out(out)
    # every runnable cell is checked (the result never depends on the selection); the chosen ones run
    dirs = cells_mod.materialise(matrix, all_cells, out / "cells")
    for cell in all_cells:
        if cell.id in dirs and cell not in chosen:
            shutil.rmtree(dirs.pop(cell.id))
    excluded = sum(not c.runnable for c in all_cells)
    progress(f"matrix {matrix.name}: {len(all_cells)} cells, {len(dirs)} to run, {excluded} excluded; "
             f"cells written to {out / 'cells'}")
    (out / "pytest.ini").write_text(PYTEST_INI)
    argv = pytest_argv([f"cells/{cid}" for cid in dirs], runtimes_of(dirs), workers, sandbox, converge_timeout)
    progress(f"running {len(dirs)} cell(s) in one pytest session, {workers} in parallel (in {out}): "
             + " ".join(argv[1:4] + ["..."]))
    t0 = time.monotonic()
    rc = _stream(argv, out, out / SESSION_LOG)
    wall = time.monotonic() - t0
    progress(f"pytest session finished in {wall:.0f}s with exit code {rc}")
    found = results.collect(out, all_cells, dirs, out / PYTEST_JUNIT, SESSION_LOG)
    header = header_of(matrix, wall_time=round(wall, 1), pytest_exit=rc, session_logs=[SESSION_LOG])
    write_all(out, header, found)
    return header, found


def write_all(out: Path, header: dict, found: list[results.CellResult]) -> None:
    results.write_results(out, header, found)
    results.write_junit(out / JUNIT, header["matrix"], found)
    report.write(out, header, found)
