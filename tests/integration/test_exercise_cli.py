"""``labkit exercise`` as separate processes, natively on this host, on a routed lab (no tunnel).

The student's whole path through the real command: list, start (the lab comes up, then
breaks), hint, check (fails; JSON and CSV written), solution, the solution's ``labkit exec``
commands, check (passes), reset (a new lab, the hints used kept), stop, and nothing left.
The DMVPN exercises themselves run in exercises/test_exercises.py (the VM sandbox where
this kernel lacks GRE or ESP).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from labkit import state

ROUTED = Path(__file__).resolve().parents[1] / "data" / "routed"

EXERCISE = f"""\
title: The router that forwards nothing
level: beginner
topology: {ROUTED}
statement: |
  h1 cannot reach h2 through r1.
hints:
  - Look at r1's firewall.
  - Delete the DROP rule of r1's FORWARD chain.
break:
  - {{node: r1, run: [iptables, -w, -A, FORWARD, -j, DROP]}}
checks:
  - {{id: h1_h2, check: ping, args: {{src: h1, dst: h2}}, timeout: 5}}
  - {{id: log_kept, check: iptables_rule, args: {{node: r1, chain: FORWARD, rule: [-j, ACCEPT]}}, needs: [h1_h2]}}
fault_fails: [h1_h2]
solution:
  - [labkit, exec, r1, --, iptables, -D, FORWARD, -j, DROP]
  - [labkit, exec, r1, --, iptables, -A, FORWARD, -j, ACCEPT]
"""


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A private record directory and exercise root, so the test sees only its own lab."""
    (tmp_path / "exercises" / "blocked").mkdir(parents=True)
    (tmp_path / "exercises" / "blocked" / "exercise.yaml").write_text(textwrap.dedent(EXERCISE))
    monkeypatch.setattr(state, "STATE_DIR", tmp_path / "state")
    return {**os.environ, "LABKIT_STATE_DIR": str(tmp_path / "state"), "LABKIT_EXERCISES": str(tmp_path / "exercises"),
            "LABKIT_STUDENT": "ann", "LABKIT_GRADES": str(tmp_path / "grades")}


def labkit(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labkit.cli", *args], capture_output=True, text=True, timeout=120,
                          env=env)


def lab_of(out: str) -> str:
    return out.split(" in lab ")[1].split()[0]


def test_a_student_goes_through_an_exercise(env, tmp_path):
    assert labkit(env, "exercise", "list").stdout.split()[:2] == ["blocked", "beginner"]
    start = labkit(env, "exercise", "start", "blocked")
    assert start.returncode == 0, start.stderr
    assert "h1 cannot reach h2 through r1." in start.stdout and "DROP" not in start.stdout + start.stderr
    first = lab_of(start.stdout)
    second = first
    try:
        assert labkit(env, "exercise", "hint").stdout == "hint 1/2: Look at r1's firewall.\n"
        broken = labkit(env, "exercise", "check")
        assert broken.returncode == 1 and "✗ h1 reaches h2" in broken.stdout, broken.stdout + broken.stderr
        grade = json.loads((tmp_path / "grades" / "ann__blocked.json").read_text())
        assert (grade["score"], grade["attempts"], grade["hints_used"]) == (0.0, 1, 1)
        assert grade["outcomes"][1]["skipped"] and grade["outcomes"][1]["detail"] == "not checked: needs h1_h2"

        solution = labkit(env, "exercise", "solution")
        steps = [line.split() for line in solution.stdout.splitlines() if line.startswith("  labkit ")]
        assert len(steps) == 2
        for argv in steps:
            run = labkit(env, *argv[1:])
            assert run.returncode == 0, run.stderr
        fixed = labkit(env, "exercise", "check")
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert "score: 2/2 (100%); hints used: 1/2; solution viewed" in fixed.stdout
        assert (tmp_path / "grades" / "ann__blocked.csv").read_text().splitlines()[1].startswith("ann,blocked,")

        again = labkit(env, "exercise", "start", "blocked")
        assert again.returncode == 2 and "'labkit exercise stop'" in again.stderr
        reset = labkit(env, "exercise", "reset")
        assert reset.returncode == 0, reset.stderr
        second = lab_of(reset.stdout)
        assert second != first and first not in state.scan()
        assert labkit(env, "exercise", "hint").stdout.startswith("hint 2/2:")
        assert labkit(env, "exercise", "check").returncode == 1, "reset must bring the fault back"
    finally:
        stop = labkit(env, "exercise", "stop")
    assert stop.returncode == 0, stop.stderr
    assert not state.residue(first) and not state.residue(second)
    assert state.records() == []
    merged = labkit(env, "exercise", "merge", str(tmp_path / "grades"))
    assert merged.stdout.splitlines()[1].split() == ["ann", "0.00", "2", "0", "0.00"]
