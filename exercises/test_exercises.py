"""Every exercise, the way a student goes through it, on real daemons.

For each exercise: ``labkit exercise start NAME`` (the lab comes up healthy, then breaks),
``labkit exercise hint``, ``labkit exercise check`` fails (and the checks the fault targets
are among the failed ones), ``labkit exercise solution`` lists the reference commands, each
runs as the ``labkit ...`` command a student types, ``labkit exercise check`` passes, and
``labkit down`` leaves nothing behind.

The commands go through the CLI's entry point (``labkit.cli.main``) with the student's
argv, in this process: under TCG a new Python interpreter importing labkit takes about two
minutes, which ten exercises cannot afford. The student's path as separate processes, on a
lab that needs no tunnel, runs natively in tests/integration/test_exercise_cli.py.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import pytest

from labkit import cli, state
from labkit.exercise import session
from labkit.exercise.spec import discover, load_exercise

ROOT = Path(__file__).resolve().parent
EXERCISES = [d.name for d in discover(ROOT)]

pytestmark = pytest.mark.runtimes("netns", reason="the exercises drive the CLI against labs recorded by "
                                             "'labkit exercise start'; their labs' behaviour is the topologies' "
                                             "(tested on both runtimes)")


def labkit(capfd, *argv: str) -> tuple[int, str]:
    """``labkit ARGV`` as typed by a student: the CLI's entry point; returns the exit code and stdout.

    One line per command goes to the terminal (the session's log); the output goes into the
    assertion messages.
    """
    t0 = time.monotonic()
    rc = cli.main(list(argv))
    out, err = capfd.readouterr()
    with capfd.disabled():
        print(f"\n    $ labkit {shlex.join(argv)}  -> exit {rc} in {time.monotonic() - t0:.1f}s", end="", flush=True)
    return rc, out + err


def grade(grades: Path, name: str) -> dict:
    return json.loads((grades / f"ci__{name}.json").read_text())


@pytest.mark.parametrize("name", EXERCISES)
def test_exercise_fails_broken_and_passes_after_the_reference_solution(name, labkit_runtime, tmp_path, capfd):
    ex = load_exercise(ROOT / name)
    grades = tmp_path / "grades"
    check = ("exercise", "check", "--student", "ci", "--out", str(grades))

    rc, out = labkit(capfd, "exercise", "start", name, "--runtime", labkit_runtime)
    assert rc == 0, out
    assert ex.statement.splitlines()[0] in out
    lab_id = session.current().record.id
    try:
        rc, out = labkit(capfd, "exercise", "hint")
        assert rc == 0 and out.startswith(f"hint 1/{len(ex.hints)}: {ex.hints[0][:30]}"), out

        # (2) the broken lab fails, and it fails where the fault is
        rc, out = labkit(capfd, *check)
        broken = grade(grades, name)
        failed = {o["id"] for o in broken["outcomes"] if not o["ok"]}
        assert rc == 1 and broken["score"] < 1, out
        assert set(ex.fault_fails) <= failed, f"the fault should fail {ex.fault_fails}; failed: {sorted(failed)}\n{out}"

        # (3) the reference solution, command by command as printed for the student
        rc, out = labkit(capfd, "exercise", "solution")
        assert rc == 0
        for argv in ex.solution:
            assert shlex.join(argv) in out
            rc, step_out = labkit(capfd, *argv[1:])
            assert rc == 0, f"solution step failed: {shlex.join(argv)}\n{step_out}"

        # (4) the fixed lab passes every check
        rc, out = labkit(capfd, *check)
        fixed = grade(grades, name)
        assert rc == 0 and fixed["score"] == 1.0, out
        assert (fixed["hints_used"], fixed["attempts"], fixed["solution_viewed"]) == (1, 2, True)
        assert (grades / f"ci__{name}.csv").read_text().startswith("student,exercise,")
    finally:
        labkit(capfd, "down", lab_id)
    assert not state.residue(lab_id), "the exercise's lab left something behind"
    assert lab_id not in {r.id for r in state.records()}, "the exercise's record outlived its lab"

