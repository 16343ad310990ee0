"""Grading: run an exercise's checks on a lab, score them, write JSON and CSV, merge many results.

A check passes when its library function holds within the check's timeout (polled, bounded:
:func:`labkit.wait.wait_until`); a check whose ``needs`` failed is not run and scores nothing.
The score is the points of the passed checks over all points.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from ..errors import LabkitError, WaitTimeout
from ..wait import wait_until
from .library import LIBRARY
from .spec import Exercise

if TYPE_CHECKING:
    from ..lab import Lab

PASS, FAIL, SKIP = "✓", "✗", "-"
FIXED_COLUMNS = ("student", "exercise", "checked_at", "score", "points", "max_points", "hints_used",
                 "solution_viewed", "attempts")


@dataclass(frozen=True)
class Outcome:
    """What one check found."""

    id: str
    title: str
    ok: bool
    points: int
    max_points: int
    detail: str
    seconds: float = 0.0
    skipped: bool = False


@dataclass
class Grade:
    """One grading of one exercise for one student."""

    student: str
    exercise: str
    title: str
    lab: str
    checked_at: str
    hints_used: int
    hints_total: int
    attempts: int
    solution_viewed: bool
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def points(self) -> int:
        return sum(o.points for o in self.outcomes)

    @property
    def max_points(self) -> int:
        return sum(o.max_points for o in self.outcomes)

    @property
    def score(self) -> float:
        return round(self.points / self.max_points, 4) if self.max_points else 0.0

    @property
    def passed(self) -> bool:
        return bool(self.outcomes) and all(o.ok for o in self.outcomes)

    def to_json(self) -> dict:
        data = asdict(self)
        data.update(score=self.score, points=self.points, max_points=self.max_points, passed=self.passed)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Grade":
        outcomes = [Outcome(**o) for o in data.get("outcomes", [])]
        keep = {k: data[k] for k in ("student", "exercise", "title", "lab", "checked_at", "hints_used", "hints_total",
                                     "attempts", "solution_viewed")}
        return cls(**keep, outcomes=outcomes)

    def row(self) -> dict:
        """One CSV row: the fixed columns, then one 1/0 column per check id."""
        out = {"student": self.student, "exercise": self.exercise, "checked_at": self.checked_at,
               "score": f"{self.score:.4f}", "points": self.points, "max_points": self.max_points,
               "hints_used": self.hints_used, "solution_viewed": int(self.solution_viewed), "attempts": self.attempts}
        out.update({o.id: int(o.ok) for o in self.outcomes})
        return out


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_checks(lab: "Lab", exercise: Exercise, progress: Callable[[str], None] = lambda m: None,
               timeout_scale: float = 1.0) -> list[Outcome]:
    """Run every check of ``exercise`` in order on ``lab``; each is polled up to its timeout."""
    outcomes: list[Outcome] = []
    failed: set[str] = set()
    for spec in exercise.checks:
        missing = [n for n in spec.needs if n in failed]
        if missing:
            failed.add(spec.id)
            outcomes.append(Outcome(spec.id, spec.title, False, 0, spec.points,
                                    f"not checked: needs {', '.join(missing)}", skipped=True))
            progress(f"{SKIP} {spec.title}: not checked (needs {', '.join(missing)})")
            continue
        fn = LIBRARY[spec.check].fn
        t0 = time.monotonic()
        try:
            detail = wait_until(lambda: fn(lab, **spec.args), spec.timeout * timeout_scale, spec.title, interval=1.0)
            ok = True
        except WaitTimeout as exc:
            detail, ok = _why(exc), False
        except LabkitError as exc:  # the lab itself is unreachable (a node gone)
            detail, ok = str(exc), False
        if not ok:
            failed.add(spec.id)
        outcome = Outcome(spec.id, spec.title, ok, spec.points if ok else 0, spec.points, str(detail),
                          round(time.monotonic() - t0, 1))
        outcomes.append(outcome)
        progress(f"{PASS if ok else FAIL} {spec.title}")
    return outcomes


def _why(exc: WaitTimeout) -> str:
    """The last reason a polled check gave, without the wait's own wording."""
    text = str(exc)
    match = re.search(r"last error: \w+: (.*)", text, re.S)
    return (match.group(1) if match else text).strip()


def render(grade: Grade) -> str:
    """The grade as a student reads it."""
    lines = [f"{grade.exercise}: {grade.title}"]
    for o in grade.outcomes:
        mark = SKIP if o.skipped else PASS if o.ok else FAIL
        lines.append(f"  {mark} {o.title}  [{o.points}/{o.max_points}]")
        if not o.ok:
            lines.append(f"      {o.detail.splitlines()[0] if o.detail else ''}")
    lines.append(f"score: {grade.points}/{grade.max_points} ({grade.score:.0%}); hints used: "
                 f"{grade.hints_used}/{grade.hints_total}" + ("; solution viewed" if grade.solution_viewed else ""))
    return "\n".join(lines)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "student"


def write(grade: Grade, out: Path) -> tuple[Path, Path]:
    """Write ``<student>__<exercise>.json`` and ``.csv`` into ``out`` (the latest check replaces the previous)."""
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{_slug(grade.student)}__{grade.exercise}"
    json_path, csv_path = stem.with_suffix(".json"), stem.with_suffix(".csv")
    json_path.write_text(json.dumps(grade.to_json(), indent=2, ensure_ascii=False) + "\n")
    row = grade.row()
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    return json_path, csv_path


def read_results(paths: Iterable[Path]) -> list[dict]:
    """Rows (the CSV columns) from grade files: JSON written by ``check``, or CSV with its columns."""
    rows = []
    for path in map(Path, paths):
        try:
            if path.suffix == ".json":
                rows.append(Grade.from_json(json.loads(path.read_text())).row())
            elif path.suffix == ".csv":
                with path.open(newline="") as f:
                    for row in csv.DictReader(f):
                        missing = [c for c in ("student", "exercise", "score") if c not in row]
                        if missing:
                            raise LabkitError(f"{path}: not a grade file: no column {', '.join(missing)}")
                        rows.append(row)
            else:
                raise LabkitError(f"{path}: grade files are .json or .csv (written by 'labkit exercise check')")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LabkitError(f"{path}: cannot read a grade from it: {exc}") from exc
    return rows


def merge(rows: list[dict]) -> tuple[list[str], list[dict]]:
    """One table: a row per student, a score column per exercise (the latest check counts), and the mean.

    Returns the column names and the rows (students in name order).
    """
    latest: dict[tuple[str, str], dict] = {}
    for row in rows:
        key = (row["student"], row["exercise"])
        if key not in latest or str(row.get("checked_at", "")) >= str(latest[key].get("checked_at", "")):
            latest[key] = row
    exercises = sorted({e for _, e in latest})
    students = sorted({s for s, _ in latest})
    table = []
    for student in students:
        out: dict = {"student": student}
        scores = []
        for ex in exercises:
            row = latest.get((student, ex))
            out[ex] = f"{float(row['score']):.2f}" if row else ""
            out[f"{ex}:hints"] = str(row.get("hints_used", "")) if row else ""
            if row:
                scores.append(float(row["score"]))
        out["done"] = sum(s >= 1.0 for s in scores)
        out["mean"] = f"{sum(scores) / len(exercises):.2f}" if exercises else ""
        table.append(out)
    columns = ["student"] + [c for ex in exercises for c in (ex, f"{ex}:hints")] + ["done", "mean"]
    return columns, table


def table_csv(columns: list[str], table: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    return buf.getvalue()


def table_text(columns: list[str], table: list[dict]) -> str:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in table)) if table else len(c) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in table]
    return "\n".join(line.rstrip() for line in lines)
