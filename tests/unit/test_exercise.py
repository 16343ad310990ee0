"""Exercises on the host: spec validation (file:line), the grader's scoring and needs, JSON/CSV, merge, CLI.

The exercises themselves run on real daemons in exercises/test_exercises.py (the VM sandbox
where this kernel lacks GRE). Here the grader runs on checks registered for the test.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from labkit.exercise import grading
from labkit.exercise.grading import Grade, Outcome
from labkit.exercise.library import LIBRARY, LibraryCheck
from labkit.exercise.spec import ExerciseError, discover, load_exercise

ROOT = Path(__file__).resolve().parents[2]
EXERCISES = ROOT / "exercises"
PHASE2 = EXERCISES / "labs" / "phase2"

VALID = f"""\
title: A test exercise
level: beginner
topology: {PHASE2}
statement: |
  Something is broken.
hints:
  - first hint
  - second hint
break:
  - {{node: spoke1, configure: nhrpd, lines: [interface gre1, no ip nhrp network-id]}}
checks:
  - {{id: h1_h0, check: ping, args: {{src: h1, dst: h0}}}}
  - {{id: reg, check: registered, args: {{spoke: spoke1}}, points: 2, needs: [h1_h0]}}
fault_fails: [h1_h0]
solution:
  - [labkit, exec, spoke1, --, vtysh, -c, configure terminal]
"""


def write(tmp_path: Path, text: str) -> Path:
    d = tmp_path / "ex"
    d.mkdir(exist_ok=True)
    (d / "exercise.yaml").write_text(textwrap.dedent(text))
    return d


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ExerciseError) as info:
        load_exercise(write(tmp_path, text))
    return [str(p) for p in info.value.problems]


# -- the shipped exercises ---------------------------------------------------------------------

def test_at_least_eight_exercises_ship():
    assert len(discover(EXERCISES)) >= 8


@pytest.mark.parametrize("name", [d.name for d in discover(EXERCISES)])
def test_shipped_exercise_is_valid_and_complete(name):
    ex = load_exercise(EXERCISES / name)
    assert 2 <= len(ex.hints) <= 3
    assert ex.breaks, "the fault is applied by break steps after a healthy bring-up"
    assert ex.fault_fails, "the tests need to know which checks the fault fails"
    assert all(argv[0] == "labkit" for argv in ex.solution)
    assert ex.topology.is_relative_to(EXERCISES), "an exercise's lab lives under exercises/ (the sandbox sees it)"


def test_statement_hints_and_titles_do_not_give_the_solution_away():
    """What `start` and `check` print must not contain the reference commands' arguments."""
    for d in discover(EXERCISES):
        ex = load_exercise(d)
        shown = ex.statement + " ".join(c.title for c in ex.checks)
        for argv in ex.solution:
            assert " ".join(argv[4:]) not in shown, f"{ex.name} shows its solution"


# -- validation --------------------------------------------------------------------------------

def test_valid_exercise_loads(tmp_path):
    ex = load_exercise(write(tmp_path, VALID))
    assert [c.id for c in ex.checks] == ["h1_h0", "reg"]
    assert ex.checks[1].title == "spoke1 is registered at the hub"
    assert ex.checks[1].needs == ("h1_h0",) and ex.max_points == 3
    assert ex.breaks[0].kind == "configure" and ex.breaks[0].daemon == "nhrpd"
    assert ex.checks[0].timeout == LIBRARY["ping"].timeout


def test_unknown_check_names_the_close_one_with_its_line(tmp_path):
    text = VALID.replace("check: registered", "check: registred")
    (msg,) = problems(tmp_path, text)
    assert "exercise.yaml:13: checks[1].check: no check named 'registred'" in msg
    assert "did you mean 'registered'?" in msg


def test_every_problem_is_reported_at_once(tmp_path):
    text = (VALID.replace("dst: h0", "dst: h9").replace("needs: [h1_h0]", "needs: [later]")
            .replace("fault_fails: [h1_h0]", "fault_fails: [nope]")
            .replace("[labkit, exec, spoke1", "[vtysh, exec, spoke1")
            .replace("args: {spoke: spoke1}", "args: {spoke: spoke1, color: red}"))
    found = problems(tmp_path, text)
    assert any("checks[0].args.dst: unknown node 'h9'" in p for p in found), found
    assert any("checks[1].needs: 'later' is not the id of an earlier check" in p for p in found), found
    assert any("checks[1].args: arguments of 'registered' do not fit" in p for p in found), found
    assert any("fault_fails[0]: 'nope' is not a check id" in p for p in found), found
    assert any("solution[0]: a solution step is a labkit command" in p for p in found), found
    assert len(found) == 5


def test_schema_problems_have_lines_and_hints(tmp_path):
    text = VALID.replace("level: beginner", "level: expert").replace("hints:\n  - first hint\n", "hint:\n  - first hint\n")
    found = problems(tmp_path, text)
    assert any("exercise.yaml:2: level: 'expert' is not supported" in p for p in found), found
    assert any("unknown field 'hint'" in p and "did you mean 'hints'?" in p for p in found), found
    assert any("'hints' is a required property" in p for p in found), found


@pytest.mark.parametrize("hints", [["only one"], ["a", "b", "c", "d"]])
def test_two_or_three_hints(tmp_path, hints):
    text = VALID.replace("  - first hint\n  - second hint\n", "".join(f"  - {h}\n" for h in hints))
    assert any(p.startswith(f"{tmp_path}/ex/exercise.yaml:6: hints") for p in problems(tmp_path, text))


def test_break_steps_are_checked(tmp_path):
    text = VALID.replace("{node: spoke1, configure: nhrpd, lines: [interface gre1, no ip nhrp network-id]}",
                         "{node: spoke1, run: [ip], fault: stop}\n  - {fault: unplug, args: [spoke1]}\n"
                         "  - {fault: set_psk, args: [spoke7, k]}")
    found = problems(tmp_path, text)
    assert any("break[0]: a break step needs exactly one of" in p for p in found), found
    assert any("break[1].fault: no fault named 'unplug'" in p and "set_psk" in p for p in found), found
    assert any("break[2].args[0]: unknown node 'spoke7'" in p for p in found), found


def test_duplicate_ids_and_yaml_errors(tmp_path):
    assert any("duplicate check id 'h1_h0'" in p for p in problems(tmp_path, VALID.replace("id: reg", "id: h1_h0")))
    (msg,) = problems(tmp_path, VALID.replace("title: A test exercise", "title: [unclosed"))
    assert "YAML syntax error" in msg


def test_a_broken_topology_reference_is_a_problem(tmp_path):
    (msg,) = problems(tmp_path, VALID.replace(str(PHASE2), str(tmp_path / "nowhere")))
    assert "topology: the topology" in msg and "does not load" in msg


# -- grading -----------------------------------------------------------------------------------

@pytest.fixture
def fake_checks(monkeypatch):
    """Checks with a known outcome (the grader is under test here, not the probes)."""
    calls = []

    def good(lab, tag="x"):
        calls.append(("good", tag))
        return f"fine {tag}"

    def bad(lab, tag="x"):
        calls.append(("bad", tag))
        raise AssertionError(f"broken {tag}")

    monkeypatch.setitem(LIBRARY, "good", LibraryCheck("good", good, "good {tag}", (), 0.3))
    monkeypatch.setitem(LIBRARY, "bad", LibraryCheck("bad", bad, "bad {tag}", (), 0.3))
    return calls


def test_grader_scores_points_and_skips_what_needs_a_failed_check(tmp_path, fake_checks):
    text = VALID.replace(
        "  - {id: h1_h0, check: ping, args: {src: h1, dst: h0}}\n"
        "  - {id: reg, check: registered, args: {spoke: spoke1}, points: 2, needs: [h1_h0]}\n",
        "  - {id: a, check: good, args: {tag: a}, points: 2}\n"
        "  - {id: b, check: bad, args: {tag: b}}\n"
        "  - {id: c, check: good, args: {tag: c}, needs: [b]}\n"
        "  - {id: d, check: good, args: {tag: d}, needs: [a], points: 3}\n").replace("[h1_h0]", "[b]")
    ex = load_exercise(write(tmp_path, text))
    seen = []
    outcomes = grading.run_checks(None, ex, seen.append)
    assert [(o.id, o.ok, o.points, o.skipped) for o in outcomes] == \
        [("a", True, 2, False), ("b", False, 0, False), ("c", False, 0, True), ("d", True, 3, False)]
    assert outcomes[1].detail == "broken b"
    assert outcomes[2].detail == "not checked: needs b"
    assert ("good", "c") not in fake_checks, "a check whose need failed must not run"
    g = Grade("ann", ex.name, ex.title, "lk0", grading.now(), 1, 2, 1, False, outcomes)
    assert (g.points, g.max_points, g.score, g.passed) == (5, 7, round(5 / 7, 4), False)
    assert seen[0].startswith("✓ good a") and seen[2].startswith("- good c")
    text = grading.render(g)
    assert "✗ bad b  [0/1]" in text and "score: 5/7 (71%)" in text


def grade(student: str, exercise: str, oks: list[bool], when: str, hints: int = 0) -> Grade:
    outcomes = [Outcome(f"c{i}", f"check {i}", ok, int(ok), 1, "") for i, ok in enumerate(oks)]
    return Grade(student, exercise, exercise.title(), "lk0", when, hints, 3, 1, False, outcomes)


def test_json_and_csv_round_trip(tmp_path):
    g = grade("Ann Lee", "psk_mismatch", [True, False], "2026-01-01T10:00:00+00:00", hints=2)
    json_path, csv_path = grading.write(g, tmp_path)
    assert json_path.name == "Ann_Lee__psk_mismatch.json"
    data = json.loads(json_path.read_text())
    assert (data["score"], data["points"], data["max_points"], data["passed"]) == (0.5, 1, 2, False)
    assert Grade.from_json(data) == g
    (row,) = csv.DictReader(csv_path.open())
    assert row["student"] == "Ann Lee" and row["score"] == "0.5000" and (row["c0"], row["c1"]) == ("1", "0")
    assert list(row)[:len(grading.FIXED_COLUMNS)] == list(grading.FIXED_COLUMNS)


def test_merge_keeps_the_latest_result_per_student_and_exercise(tmp_path):
    files = []
    for g in (grade("ann", "a", [False, True], "2026-01-01T10:00:00+00:00", hints=1),
              grade("ann", "a", [True, True], "2026-01-01T11:00:00+00:00", hints=2),
              grade("bob", "a", [True, False], "2026-01-01T10:30:00+00:00"),
              grade("bob", "b", [True, True, True, True], "2026-01-01T10:40:00+00:00")):
        out = tmp_path / g.checked_at[11:13] / g.student
        files += list(grading.write(g, out))
    rows = grading.read_results([f for f in files if f.suffix == ".csv"])
    assert len(rows) == 4
    columns, table = grading.merge(rows)
    assert columns == ["student", "a", "a:hints", "b", "b:hints", "done", "mean"]
    assert table == [{"student": "ann", "a": "1.00", "a:hints": "2", "b": "", "b:hints": "", "done": 1, "mean": "0.50"},
                     {"student": "bob", "a": "0.50", "a:hints": "0", "b": "1.00", "b:hints": "0", "done": 1,
                      "mean": "0.75"}]
    assert grading.merge(grading.read_results([f for f in files if f.suffix == ".json"]))[1] == table
    assert grading.table_csv(columns, table).splitlines()[0] == "student,a,a:hints,b,b:hints,done,mean"


def test_merge_refuses_files_that_are_not_grades(tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("name,value\nann,1\n")
    with pytest.raises(Exception, match="not a grade file"):
        grading.read_results([bad])


# -- the command, as a process -----------------------------------------------------------------

def labkit(*argv: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LABKIT_STATE_DIR": str(tmp_path / "state")}
    return subprocess.run([sys.executable, "-m", "labkit.cli", *argv], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)


def test_cli_lists_and_shows_solutions(tmp_path):
    res = labkit("exercise", "list", tmp_path=tmp_path)
    assert res.returncode == 0, res.stderr
    names = [line.split()[0] for line in res.stdout.splitlines()]
    assert names == [d.name for d in discover(EXERCISES)]
    res = labkit("exercise", "solution", "psk_mismatch", tmp_path=tmp_path)
    assert res.returncode == 0 and "labkit exec spoke1 -- swanctl --load-creds" in res.stdout


def test_cli_without_a_running_exercise_names_the_fix(tmp_path):
    for cmd in ("hint", "check", "reset", "stop"):
        res = labkit("exercise", cmd, tmp_path=tmp_path)
        assert res.returncode == 2 and "no exercise is running: start one with 'labkit exercise start NAME'" \
            in res.stderr, (cmd, res.stderr)
    res = labkit("exercise", "start", "psk_mismach", tmp_path=tmp_path)
    assert res.returncode == 2 and "did you mean 'psk_mismatch'?" in res.stderr


def test_cli_start_refuses_where_the_lab_would_need_the_sandbox(tmp_path):
    """Like 'labkit up': an exercise's lab outlives the command, so it needs this kernel; the error says what to do."""
    res = labkit("exercise", "start", "nhrp_disabled", "--sandbox", "on", tmp_path=tmp_path)
    assert res.returncode == 2, res.stdout
    assert "leaves a lab running for you to work on, which needs the host kernel" in res.stderr
    assert "python3 -m pytest exercises -k nhrp_disabled" in res.stderr
    assert not (tmp_path / "state").exists() or not list((tmp_path / "state").iterdir())


def test_cli_merge_writes_one_table(tmp_path):
    for g in (grade("ann", "a", [True], "2026-01-01T10:00:00+00:00"), grade("bob", "a", [False], "2026-01-01T10:00:00+00:00")):
        grading.write(g, tmp_path / "grades")
    res = labkit("exercise", "merge", "grades", "--csv", "all.csv", tmp_path=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0].split() == ["student", "a", "a:hints", "done", "mean"]
    assert (tmp_path / "all.csv").read_text().splitlines()[1:] == ["ann,1.00,0,1,1.00", "bob,0.00,0,0,0.00"]


def test_cli_validate_reports_file_and_line(tmp_path):
    write(tmp_path, VALID.replace("check: ping", "check: pong"))
    res = labkit("exercise", "validate", str(tmp_path / "ex"), "--exercises", str(tmp_path), tmp_path=tmp_path)
    assert res.returncode == 1 and "exercise.yaml:12: checks[0].check: no check named 'pong'" in res.stderr


def test_the_exercise_state_lives_in_the_lab_record_and_goes_with_it(tmp_path, monkeypatch):
    from labkit import state
    from labkit.exercise import session

    monkeypatch.setattr(state, "STATE_DIR", tmp_path)
    notes = {session.NOTE: {"name": "psk_mismatch", "dir": str(EXERCISES / "psk_mismatch"), "hints_shown": 2}}
    state.save(state.LabRecord("lkabcdef", str(PHASE2), "netns", {"hub": 2 ** 22 + 1}, 1, 0.0, notes=notes))
    (rec,) = state.records()
    assert rec.notes == notes
    assert session.running() == [], "a record whose nodes are gone is no running exercise"
    state.cleanup(lab_id="lkabcdef")
    assert list(tmp_path.iterdir()) == []
