"""Exercise files: ``exercises/<name>/exercise.yaml`` → schema and semantic checks → :class:`Exercise`.

Every problem is reported at once with file:line and field path, as topology files are
(:mod:`labkit.load`); nothing starts from an invalid exercise.
"""

from __future__ import annotations

import difflib
import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from ..errors import LabkitError, Problem, TopologyError
from ..load import _Collector, _fmt, _to_python, load, unknown_fields
from ..model import Topology

FILE = "exercise.yaml"
LEVELS = ("beginner", "intermediate", "advanced")
ENV_DIR = "LABKIT_EXERCISES"

_STR = {"type": "string", "minLength": 1}
_ARGV = {"type": "array", "minItems": 1, "items": {"type": ["string", "integer"]}}
SCHEMA: dict = {
    "type": "object",
    "required": ["title", "level", "topology", "statement", "hints", "checks", "solution"],
    "additionalProperties": False,
    "properties": {
        "title": _STR,
        "level": {"enum": list(LEVELS)},
        "topology": _STR,
        "statement": _STR,
        "hints": {"type": "array", "minItems": 2, "maxItems": 3, "items": _STR},
        "break": {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "properties": {"node": _STR, "run": _ARGV, "configure": _STR, "lines": {"type": "array", "items": _STR},
                           "fault": _STR, "args": {"type": "array"}}}},
        "checks": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["id", "check"], "additionalProperties": False,
            "properties": {"id": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"}, "check": _STR,
                           "title": _STR, "args": {"type": "object"},
                           "points": {"type": "integer", "minimum": 1},
                           "timeout": {"type": "number", "exclusiveMinimum": 0},
                           "needs": {"type": "array", "items": _STR}}}},
        "solution": {"type": "array", "minItems": 1, "items": {"type": "array", "minItems": 2, "items": _STR}},
        "fault_fails": {"type": "array", "minItems": 1, "items": _STR},
    },
}


class ExerciseError(LabkitError):
    """An exercise file failed validation. Carries every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"{len(self.problems)} {noun} in exercise:\n" + "\n".join(map(str, self.problems)))


@dataclass(frozen=True)
class CheckSpec:
    """One graded check: a library check with its arguments, worth ``points``."""

    id: str
    check: str
    args: dict
    title: str
    points: int = 1
    timeout: float = 30.0
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Step:
    """One step that breaks the healthy lab: a command, FRR configuration lines, or a fault of ``lab.faults``."""

    kind: str  # "run", "configure" or "fault"
    node: str | None = None
    argv: tuple[str, ...] = ()  # run: the command; fault: the fault's arguments
    daemon: str | None = None  # configure
    lines: tuple[str, ...] = ()  # configure
    fault: str | None = None  # fault: a method of lab.faults

    def __str__(self) -> str:
        if self.kind == "run":
            return f"{self.node}: {' '.join(self.argv)}"
        if self.kind == "configure":
            return f"{self.node}: {self.daemon}: {'; '.join(self.lines)}"
        return f"fault {self.fault}({', '.join(self.argv)})"


@dataclass(frozen=True)
class Exercise:
    name: str
    dir: Path
    title: str
    level: str
    topology: Path
    statement: str
    hints: tuple[str, ...]
    breaks: tuple[Step, ...]
    checks: tuple[CheckSpec, ...]
    solution: tuple[tuple[str, ...], ...]
    fault_fails: tuple[str, ...] = ()  # for the tests: checks the fault must make fail

    @property
    def max_points(self) -> int:
        return sum(c.points for c in self.checks)


def default_root() -> Path:
    """Where exercises live: ``$LABKIT_EXERCISES``, else the checkout's ``exercises/``, else ``./exercises``."""
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR])
    shipped = Path(__file__).resolve().parents[2] / "exercises"
    return shipped if shipped.is_dir() else Path("exercises")


def discover(root: Path) -> list[Path]:
    """Exercise directories under ``root`` (each holds an ``exercise.yaml``), by name."""
    return sorted(p.parent for p in Path(root).glob(f"*/{FILE}"))


def find(name: str, root: Path) -> Path:
    """The directory of exercise ``name`` (or ``name`` itself when it is a directory with an exercise)."""
    if (Path(name) / FILE).is_file():
        return Path(name)
    here = Path(root) / name
    if (here / FILE).is_file():
        return here
    known = [p.name for p in discover(root)]
    close = difflib.get_close_matches(name, known, n=1)
    raise LabkitError(f"no exercise named {name!r} in {root}" + (f"; did you mean {close[0]!r}?" if close else "")
                      + f" ('labkit exercise list' shows the {len(known)} exercises)")


def load_exercise(path: str | Path) -> Exercise:
    """Load and validate ``exercise.yaml`` (a file, or the directory holding it).

    Raises:
        ExerciseError: every problem found, each with file:line and field path.
    """
    path = Path(path)
    if path.is_dir():
        path = path / FILE
    if not path.is_file():
        raise ExerciseError([Problem(str(path), None, "", "file not found")])
    try:
        root = yaml.compose(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ExerciseError([Problem(str(path), mark.line + 1 if mark else None, "",
                                     f"YAML syntax error: {getattr(exc, 'problem', exc)}")]) from None
    lines: dict = {}
    dups: list = []
    data = _to_python(root, (), lines, dups) if root is not None else None
    col = _Collector(str(path), lines)
    for where, first, line in dups:
        col.problems.append(Problem(str(path), line, _fmt(where), f"duplicate key {where[-1]!r} (first at line {first})"))
    if not isinstance(data, dict):
        col.add((), "the file must hold a mapping with title, level, topology, statement, hints, checks and solution")
        raise ExerciseError(col.problems)
    for err in sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        where = tuple(err.absolute_path)
        unknown = unknown_fields(err)
        if unknown is not None:
            for found in unknown:
                col.add(*found)
        elif err.validator == "enum":
            col.add(where, f"{err.instance!r} is not supported", f"supported values are {', '.join(map(repr, err.validator_value))}")
        else:
            col.add(where, err.message)
    if col.problems:
        raise ExerciseError(col.problems)
    exercise = _build(data, path, col)
    if col.problems:
        raise ExerciseError(col.problems)
    return exercise


def _build(data: dict, path: Path, col: _Collector) -> Exercise:
    from .library import LIBRARY

    topo_path = (path.parent / data["topology"]).resolve()
    topo: Topology | None = None
    try:
        topo = load(topo_path)
    except TopologyError as exc:
        col.add(("topology",), f"the topology {data['topology']!r} does not load: {exc.problems[0]}",
                "run 'labkit validate' on it for every problem")
    nodes = set(topo.nodes) if topo else None

    def node_ok(where: tuple, name: Any) -> None:
        if nodes is not None and name not in nodes:
            col.add(where, f"unknown node {name!r}", f"nodes of {topo_path.name}: {', '.join(sorted(nodes))}")

    checks, ids = [], set()
    for i, raw in enumerate(data["checks"]):
        where = ("checks", i)
        cid, name, args = raw["id"], raw["check"], raw.get("args", {})
        if cid in ids:
            col.add(where + ("id",), f"duplicate check id {cid!r}")
        for need in raw.get("needs", []):
            if need not in ids:
                col.add(where + ("needs",), f"{need!r} is not the id of an earlier check", "a check can only need checks above it")
        ids.add(cid)
        entry = LIBRARY.get(name)
        if entry is None:
            close = difflib.get_close_matches(name, list(LIBRARY), n=1)
            col.add(where + ("check",), f"no check named {name!r}",
                    (f"did you mean {close[0]!r}? " if close else "") + f"checks: {', '.join(sorted(LIBRARY))}")
            continue
        try:
            inspect.signature(entry.fn).bind(None, **args)
        except TypeError as exc:
            col.add(where + ("args",), f"arguments of {name!r} do not fit: {exc}", f"{name}{entry.signature}")
            continue
        for param in entry.nodes:
            if param in args:
                node_ok(where + ("args", param), args[param])
        checks.append(CheckSpec(cid, name, dict(args), raw.get("title") or entry.title(args), raw.get("points", 1),
                                float(raw.get("timeout", entry.timeout)), tuple(raw.get("needs", ()))))
    for i, cid in enumerate(data.get("fault_fails", [])):
        if cid not in ids:
            col.add(("fault_fails", i), f"{cid!r} is not a check id", f"check ids: {', '.join(sorted(ids))}")
    steps = [_step(raw, ("break", i), col, node_ok) for i, raw in enumerate(data.get("break", []))]
    for i, argv in enumerate(data["solution"]):
        where = ("solution", i)
        if argv[0] != "labkit":
            col.add(where, f"a solution step is a labkit command a student types; this one starts with {argv[0]!r}",
                    "write e.g. [labkit, exec, spoke1, --, vtysh, -c, ...]")
        elif argv[1] == "exec" and len(argv) > 2:
            node_ok(where + (2,), argv[2])
    return Exercise(path.parent.name, path.parent.resolve(), data["title"], data["level"], topo_path,
                    data["statement"].strip(), tuple(h.strip() for h in data["hints"]),
                    tuple(s for s in steps if s is not None), tuple(checks),
                    tuple(tuple(argv) for argv in data["solution"]), tuple(data.get("fault_fails", ())))


def _step(raw: dict, where: tuple, col: _Collector, node_ok) -> Step | None:
    from ..faults import Faults

    kinds = [k for k in ("run", "configure", "fault") if k in raw]
    if len(kinds) != 1:
        col.add(where, "a break step needs exactly one of 'run', 'configure' or 'fault'",
                "run: [argv] on 'node'; configure: DAEMON with 'lines' on 'node'; fault: NAME with 'args'")
        return None
    kind = kinds[0]
    if kind in ("run", "configure"):
        if "node" not in raw:
            col.add(where, f"a '{kind}' step needs 'node'")
            return None
        node_ok(where + ("node",), raw["node"])
        if kind == "run":
            return Step("run", raw["node"], tuple(str(a) for a in raw["run"]))
        if not raw.get("lines"):
            col.add(where, "a 'configure' step needs 'lines' (configuration lines for the daemon)")
            return None
        return Step("configure", raw["node"], daemon=raw["configure"], lines=tuple(raw["lines"]))
    name, args = raw["fault"], [str(a) for a in raw.get("args", [])]
    method = getattr(Faults, name, None)
    if name.startswith("_") or not callable(method):
        public = [m for m in vars(Faults) if not m.startswith("_") and callable(getattr(Faults, m))]
        col.add(where + ("fault",), f"no fault named {name!r}", f"faults: {', '.join(sorted(public))}")
        return None
    try:
        inspect.signature(method).bind(None, *args)
    except TypeError as exc:
        col.add(where + ("args",), f"arguments of fault {name!r} do not fit: {exc}")
        return None
    if args:
        node_ok(where + ("args", 0), args[0])
    return Step("fault", args[0] if args else None, tuple(args), fault=name)
