"""Load a matrix file: YAML → schema check → semantic checks → :class:`Matrix`.

As with topologies (:mod:`labkit.load`), every problem is collected with its file:line and field
path and :class:`MatrixError` is raised once with all of them, before anything is created.

Names in a matrix (axes, their values, the values an exclusion matches) are read as the text
written, so ``off``, ``2`` and ``"2"`` mean the names ``off`` and ``2``; the values patched
into topologies keep their YAML types (``enabled: false`` is a boolean).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from ..errors import LabkitError, Problem
from ..load import _Collector, _fmt, unknown_fields
from ..runtime import RUNTIMES

RUNTIME_AXIS = "runtime"  # the built-in axis: a value's name is its runtime


class MatrixError(LabkitError):
    """A matrix file (or one of its cells) is invalid. Carries every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"{len(self.problems)} {noun} in matrix:\n" + "\n".join(str(p) for p in self.problems))


def schema() -> dict:
    """The published JSON Schema of matrix files."""
    return json.loads(resources.files("labkit.schema").joinpath("matrix.schema.json").read_text())


@dataclass(frozen=True)
class Patch:
    """One ``set:`` entry: a field path into the topology YAML and the value put there (None removes it)."""

    path: tuple[str | int, ...]
    value: Any
    where: tuple  # the field path of this entry in the matrix file

    @property
    def dotted(self) -> str:
        return ".".join(str(p) for p in self.path)


@dataclass(frozen=True)
class AxisValue:
    """What one value of one axis changes in a cell."""

    axis: str
    name: str
    description: str = ""
    base: Path | None = None
    patches: tuple[Patch, ...] = ()
    runtime: str | None = None
    image: str | None = None
    tests: tuple[Path, ...] = ()

    @property
    def where(self) -> tuple:
        return ("axes", self.axis, self.name)


@dataclass(frozen=True)
class Exclude:
    """Cells having all of ``match``'s values are not run, for ``reason``."""

    match: tuple[tuple[str, tuple[str, ...]], ...]
    reason: str
    index: int

    def matches(self, values: dict[str, str]) -> bool:
        return all(values.get(axis) in names for axis, names in self.match)

    def describe(self) -> str:
        return ", ".join(f"{a}={'|'.join(n)}" for a, n in self.match)


@dataclass(frozen=True)
class Matrix:
    """A validated matrix. Paths are absolute; ``axes`` keep the file's order."""

    name: str
    source: Path
    base: Path
    tests: tuple[Path, ...]
    axes: dict[str, dict[str, AxisValue]]
    exclude: tuple[Exclude, ...] = ()
    runtime: str = "netns"
    description: str = ""
    lines: dict = field(default_factory=dict, repr=False, compare=False)

    def line_of(self, path: tuple) -> int | None:
        path = tuple(path)
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path)

    def problem(self, path: tuple, message: str, hint: str = "") -> Problem:
        return Problem(str(self.source), self.line_of(path), _fmt(path), message, hint)


def _compose(node: yaml.Node, path: tuple, lines: dict, raws: dict, dups: list) -> Any:
    """Plain data from a YAML node, recording each path's line and each scalar's text as written.

    Mapping keys are always their text: in a matrix they are names and field paths.
    """
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in out:
                dups.append((path + (key,), lines[path + (key,)], key_node.start_mark.line + 1))
            out[key] = _compose(value_node, path + (key,), lines, raws, dups)
            lines[path + (key,)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_compose(item, path + (i,), lines, raws, dups) for i, item in enumerate(node.value)]
    raws[path] = str(node.value)
    return yaml.safe_load(yaml.serialize(node))


def _names_as_written(data: dict, raws: dict) -> None:
    """Exclusions match value *names*: ``ipsec: off`` means the value named off, not a boolean."""
    for i, rule in enumerate(data.get("exclude") or []):
        match = rule.get("match") if isinstance(rule, dict) else None
        if not isinstance(match, dict):
            continue
        for axis, value in match.items():
            here = ("exclude", i, "match", axis)
            if isinstance(value, list):
                match[axis] = [raws.get(here + (j,), v) if not isinstance(v, (dict, list)) else v
                               for j, v in enumerate(value)]
            elif not isinstance(value, dict) and value is not None:
                match[axis] = raws.get(here, value)


def _schema_problems(data: dict, col: _Collector) -> None:
    found = []
    for err in jsonschema.Draft202012Validator(schema()).iter_errors(data):
        where = tuple(err.absolute_path)
        unknown = unknown_fields(err)
        if unknown is not None:
            found += unknown
            continue
        if err.validator == "enum":
            found.append((where, f"{err.instance!r} is not supported",
                          "supported values are " + ", ".join(repr(c) for c in err.validator_value)))
        elif err.validator == "pattern" and err.schema.get("pattern", "").startswith("(^|/)test_"):
            found.append((where, f"{err.instance!r} is not a test module", "name test modules test_*.py"))
        elif err.validator == "pattern":
            found.append((where, f"{err.instance!r} does not have the expected form",
                          f"expected to match {err.validator_value}"))
        elif err.validator == "propertyNames":
            bad = err.instance if isinstance(err.instance, str) else ""
            found.append((where, f"{bad!r} is not a valid name here" if bad else err.message,
                          f"names must match {err.validator_value.get('pattern', '')}"))
        else:
            found.append((where, err.message, ""))
    for where, message, hint in sorted(found, key=lambda f: col.line_of(f[0]) or 0):
        col.add(where, message, hint)


def _topology_file(raw: str, here: Path, col: _Collector, where: tuple) -> Path | None:
    path = (here / raw).resolve()
    target = path / "topology.yaml" if path.is_dir() else path
    if not target.is_file():
        col.add(where, f"{raw!r} is not a topology: {target} does not exist",
                "give a directory holding topology.yaml, or a topology file, relative to the matrix file")
        return None
    return target


def _test_files(raw: list, here: Path, col: _Collector, where: tuple) -> tuple[Path, ...]:
    out = []
    for i, item in enumerate(raw):
        path = (here / item).resolve()
        if not path.is_file():
            col.add(where + (i,), f"test module {item!r} does not exist ({path})",
                    "test paths are relative to the matrix file")
            continue
        out.append(path)
    return tuple(out)


def _unique_tests(tests: tuple[Path, ...], taken: set[str], col: _Collector, where: tuple) -> None:
    """A cell holds its test modules side by side: their file names must differ."""
    seen = set(taken)
    for i, t in enumerate(tests):
        if t.name in seen:
            col.add(where + (i,), f"test module name {t.name!r} is already taken"
                    + (" by the matrix's tests" if t.name in taken else ""),
                    "a cell holds every test module side by side: rename one")
        seen.add(t.name)


def _patch_path(dotted: str) -> tuple[str | int, ...]:
    return tuple(int(p) if p.isdigit() else p for p in dotted.split("."))


def _build(data: dict, source: Path, col: _Collector) -> Matrix:
    here = source.parent
    base = _topology_file(data["base"], here, col, ("base",))
    tests = _test_files(data["tests"], here, col, ("tests",))
    axes: dict[str, dict[str, AxisValue]] = {}
    for axis, values in data["axes"].items():
        axes[axis] = {}
        for name, raw in values.items():
            raw = raw or {}
            where = ("axes", axis, name)
            runtime = raw.get("runtime")
            if runtime is None and axis == RUNTIME_AXIS:
                if name not in RUNTIMES:
                    col.add(where, f"the runtime axis has a value {name!r}, which is not a runtime",
                            f"name its values {', '.join(RUNTIMES)}, or give each one 'runtime:'")
                runtime = name
            vbase = _topology_file(raw["base"], here, col, where + ("base",)) if "base" in raw else None
            vtests = _test_files(raw.get("tests", []), here, col, where + ("tests",))
            _unique_tests(vtests, {t.name for t in tests}, col, where + ("tests",))
            patches = tuple(Patch(_patch_path(k), v, where + ("set", k)) for k, v in (raw.get("set") or {}).items())
            if raw.get("image") and runtime == "netns":
                col.add(where + ("image",), "an image applies to the docker runtime, but this value sets runtime: netns")
            axes[axis][name] = AxisValue(axis, name, raw.get("description", ""), vbase, patches, runtime,
                                         raw.get("image"), vtests)
    _unique_tests(tests, set(), col, ("tests",))
    excludes = []
    for i, rule in enumerate(data.get("exclude", [])):
        match = []
        for axis, names in rule["match"].items():
            where = ("exclude", i, "match", axis)
            if axis not in axes:
                close = difflib.get_close_matches(axis, list(axes), n=1)
                col.add(where, f"unknown axis {axis!r}",
                        (f"did you mean {close[0]!r}? " if close else "") + f"axes: {', '.join(axes)}")
                continue
            names = tuple(str(n) for n in (names if isinstance(names, list) else [names]))
            for j, n in enumerate(names):
                if n not in axes[axis]:
                    close = difflib.get_close_matches(n, list(axes[axis]), n=1)
                    col.add(where + ((j,) if isinstance(rule["match"][axis], list) else ()),
                            f"axis {axis!r} has no value {n!r}",
                            (f"did you mean {close[0]!r}? " if close else "") + f"its values: {', '.join(axes[axis])}")
            match.append((axis, names))
        excludes.append(Exclude(tuple(match), rule["reason"].strip(), i))
    return Matrix(name=data["name"], source=source, base=base or source, tests=tests, axes=axes,
                  exclude=tuple(excludes), runtime=data.get("runtime", "netns"),
                  description=data.get("description", ""))


def load_matrix(path: str | Path) -> Matrix:
    """Load and validate a matrix file.

    Raises:
        MatrixError: with every problem found, each with file:line and field path.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise MatrixError([Problem(str(path), None, "", "file not found")])
    try:
        root = yaml.compose(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise MatrixError([Problem(str(path), mark.line + 1 if mark else None, "",
                                   f"YAML syntax error: {getattr(exc, 'problem', exc)}")]) from None
    lines: dict = {}
    raws: dict = {}
    dups: list = []
    data = _compose(root, (), lines, raws, dups) if root is not None else None
    col = _Collector(str(path), lines)
    for where, first, line in dups:
        col.problems.append(Problem(str(path), line, _fmt(where), f"duplicate key {where[-1]!r} (first at line {first})",
                                    "YAML would silently keep only the last one; rename or merge them"))
    if not isinstance(data, dict):
        col.add((), "the file must hold a mapping with at least 'name', 'base', 'tests' and 'axes'")
        raise MatrixError(col.problems)
    _names_as_written(data, raws)
    _schema_problems(data, col)
    if col.problems:
        raise MatrixError(col.problems)
    matrix = _build(data, path, col)
    if col.problems:
        raise MatrixError(col.problems)
    object.__setattr__(matrix, "lines", lines)
    return matrix
