"""``labkit exercise``: list, start, hint, check, reset, solution, stop; merge and validate for instructors."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shlex
import sys
from pathlib import Path

from ..errors import LabkitError
from ..lab import stderr_progress
from ..runtime import RUNTIMES, runtime_from_env
from ..sandbox import vm
from . import grading, session
from .spec import ExerciseError, default_root, discover, find, load_exercise

GRADES_DIR = "labkit-grades"


def _root(args) -> Path:
    return Path(args.exercises) if getattr(args, "exercises", None) else default_root()


def cmd_list(args) -> int:
    root = _root(args)
    dirs = discover(root)
    if not dirs:
        raise LabkitError(f"no exercises under {root} (each is a directory with an exercise.yaml); "
                          f"pass --exercises DIR or set $LABKIT_EXERCISES")
    active = {r.notes[session.NOTE]["name"]: r.id for r in session.running()}
    rc = 0
    for d in dirs:
        try:
            ex = load_exercise(d)
        except ExerciseError as exc:
            print(f"{d.name:<22} INVALID: {exc.problems[0]}")
            rc = 1
            continue
        mark = f"  (running in lab {active[ex.name]})" if ex.name in active else ""
        print(f"{ex.name:<22} {ex.level:<13} {ex.title}{mark}")
    return rc


def cmd_validate(args) -> int:
    root = _root(args)
    targets = [find(n, root) for n in args.names] if args.names else discover(root)
    rc = 0
    for d in targets:
        try:
            ex = load_exercise(d)
            print(f"{d / 'exercise.yaml'}: ok ({len(ex.checks)} checks, {ex.max_points} points, "
                  f"{len(ex.hints)} hints, {len(ex.solution)} solution steps)")
        except ExerciseError as exc:
            print(exc, file=sys.stderr)
            rc = 1
    return rc


def _statement(ex) -> str:
    return (f"{ex.title}  [{ex.name}, {ex.level}]\n\n{ex.statement}\n\n"
            f"Work on the lab with 'labkit exec NODE -- COMMAND' ('labkit status' lists the nodes).\n"
            f"'labkit exercise hint' gives a hint ({len(ex.hints)} available), 'labkit exercise check' grades "
            f"your fix, 'labkit exercise reset' starts over.")


def cmd_start(args) -> int:
    ex = load_exercise(find(args.name, _root(args)))
    session.refuse_without_kernel(ex, args.sandbox or vm.mode_from_env(), stderr_progress)
    s = session.start(ex, args.runtime or runtime_from_env(), stderr_progress, args.converge_timeout, args.image)
    print(f"exercise {ex.name} is running in lab {s.record.id}\n")
    print(_statement(ex))
    return 0


def cmd_hint(args) -> int:
    s = session.current(args.lab)
    hints, shown = s.exercise.hints, s.notes["hints_shown"]
    if shown >= len(hints):
        print(f"no more hints ({len(hints)} given); 'labkit exercise solution' shows the reference solution")
        return 0
    s.notes["hints_shown"] = shown + 1
    s.save()
    print(f"hint {shown + 1}/{len(hints)}: {hints[shown]}")
    return 0


def cmd_check(args) -> int:
    s = session.current(args.lab)
    lab = s.lab()
    say = (lambda m: None) if args.json else (lambda m: print(f"  {m}", flush=True))
    if not args.json:
        print(f"checking {s.exercise.name} in lab {s.record.id} ...", flush=True)
    outcomes = grading.run_checks(lab, s.exercise, say)
    s.notes["attempts"] += 1
    s.save()
    student = args.student or os.environ.get("LABKIT_STUDENT") or getpass.getuser()
    grade = grading.Grade(student, s.exercise.name, s.exercise.title, s.record.id, grading.now(),
                          s.notes["hints_shown"], len(s.exercise.hints), s.notes["attempts"],
                          bool(s.notes["solution_viewed"]), outcomes)
    paths = grading.write(grade, Path(args.out or os.environ.get("LABKIT_GRADES") or GRADES_DIR))
    if args.json:
        print(json.dumps(grade.to_json(), indent=2, ensure_ascii=False))
    else:
        print(grading.render(grade))
        print(f"written: {', '.join(map(str, paths))}")
    return 0 if grade.passed else 1


def cmd_reset(args) -> int:
    s = session.current(args.lab)
    old = s.record.id
    s = session.reset(s, stderr_progress, args.converge_timeout, args.image)
    print(f"exercise {s.exercise.name} started again in lab {s.record.id} (lab {old} removed)\n")
    print(_statement(s.exercise))
    return 0


def cmd_solution(args) -> int:
    if args.name:
        ex = load_exercise(find(args.name, _root(args)))
        running = [r for r in session.running(args.lab) if r.notes[session.NOTE]["name"] == ex.name]
        current = session.Session(running[0], ex) if running else None
    else:
        current = session.current(args.lab)
        ex = current.exercise
    if current is not None:
        current.notes["solution_viewed"] = True
        current.save()
    print(f"reference solution of {ex.name} ({ex.title}):")
    for argv in ex.solution:
        print(f"  {shlex.join(argv)}")
    print("then: labkit exercise check")
    return 0


def cmd_stop(args) -> int:
    s = session.current(args.lab)
    removed = session.stop(s)
    print(f"exercise {s.exercise.name} stopped; removed lab {', '.join(removed) or s.record.id}")
    return 0


def cmd_merge(args) -> int:
    files = [Path(f) for f in args.files]
    expanded = [p for f in files for p in (sorted([*f.glob("*.json")]) if f.is_dir() else [f])]
    if not expanded:
        raise LabkitError("no grade files given: pass the .json or .csv files 'labkit exercise check' wrote, "
                          "or directories holding them")
    columns, table = grading.merge(grading.read_results(expanded))
    if args.csv:
        Path(args.csv).write_text(grading.table_csv(columns, table))
        stderr_progress(f"wrote {args.csv}")
    print(grading.table_text(columns, table))
    return 0


def add_parser(sub) -> None:
    """Register ``labkit exercise`` on the top-level subparsers."""
    p = sub.add_parser("exercise", help="training exercises: a broken DMVPN to fix, hints, and a grade")
    esub = p.add_subparsers(dest="exercise_command", required=True)

    def where(sp):
        sp.add_argument("--exercises", default=None, metavar="DIR",
                        help="where exercises are (default: $LABKIT_EXERCISES, else the checkout's exercises/)")
        return sp

    def which(sp):
        sp.add_argument("--lab", default=None, help="lab id of the exercise (needed when several run)")
        return sp

    def lab_opts(sp):
        sp.add_argument("--converge-timeout", type=float, default=300.0, help="seconds to wait for convergence")
        sp.add_argument("--image", default=None, help="docker runtime: node image")
        return sp

    sp = where(esub.add_parser("list", help="list the exercises"))
    sp.set_defaults(func=cmd_list)
    sp = lab_opts(where(esub.add_parser("start", help="start an exercise: its lab comes up, broken")))
    sp.add_argument("name")
    sp.add_argument("--runtime", choices=RUNTIMES, default=None, help="node runtime (default netns, or $LABKIT_RUNTIME)")
    sp.add_argument("--sandbox", choices=("auto", "on", "off"), default=None, help=argparse.SUPPRESS)
    sp.set_defaults(func=cmd_start)
    sp = which(esub.add_parser("hint", help="show the next hint"))
    sp.set_defaults(func=cmd_hint)
    sp = which(esub.add_parser("check", help="grade the running exercise; writes JSON and CSV"))
    sp.add_argument("--student", default=None, help="name on the grade (default: $LABKIT_STUDENT, else the user)")
    sp.add_argument("--out", default=None, help=f"directory for the grade files (default: $LABKIT_GRADES, else ./{GRADES_DIR})")
    sp.add_argument("--json", action="store_true", help="print the grade as JSON")
    sp.set_defaults(func=cmd_check)
    sp = lab_opts(which(esub.add_parser("reset", help="start the running exercise again from its broken state")))
    sp.set_defaults(func=cmd_reset)
    sp = which(where(esub.add_parser("solution", help="print the reference solution's commands")))
    sp.add_argument("name", nargs="?", help="an exercise (default: the running one)")
    sp.set_defaults(func=cmd_solution)
    sp = which(esub.add_parser("stop", help="end the running exercise and tear its lab down"))
    sp.set_defaults(func=cmd_stop)
    sp = esub.add_parser("merge", help="instructors: merge students' grade files into one table")
    sp.add_argument("files", nargs="+", help="grade files (.json or .csv) or directories of them")
    sp.add_argument("--csv", default=None, metavar="OUT", help="also write the table as CSV")
    sp.set_defaults(func=cmd_merge)
    sp = where(esub.add_parser("validate", help="instructors: check exercise files (every problem, file:line)"))
    sp.add_argument("names", nargs="*", help="exercises (default: all)")
    sp.set_defaults(func=cmd_validate)
