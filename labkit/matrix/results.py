"""A matrix run's results: per-cell outcomes from pytest's JUnit XML, ``results.json``, merged JUnit.

``results.json`` in an output directory is the record of a run: every cell of the matrix (run,
excluded, or not run by this job) with its tests, time, versions and files. Merging CI jobs and
rendering the HTML report read only it and the files it names.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .cells import VERSIONS_FILE, Cell

RESULTS = "results.json"
FORMAT = 1
DETAIL_LIMIT = 20000  # characters of a failure's text kept per test
# a cell's status; the last two are not failures (not-run: not selected in this run, e.g. a CI job
# running one cell; a merge turns cells no job ran into errors)
STATUSES = ("pass", "fail", "error", "skip", "not-run", "excluded")
FAILING = ("fail", "error", "skip")


@dataclass
class TestCase:
    module: str
    name: str
    outcome: str  # passed, failed, error, skipped
    time: float = 0.0
    message: str = ""
    detail: str = ""


@dataclass
class CellResult:
    id: str
    axes: dict[str, str]
    status: str
    reason: str = ""  # why excluded, or why it has no results
    lab: str = ""
    runtime: str = ""
    tests: list[TestCase] = field(default_factory=list)
    time: float = 0.0
    versions: dict[str, str] = field(default_factory=dict)
    files: dict[str, list[str] | str] = field(default_factory=dict)  # paths relative to the output directory

    def counts(self) -> dict[str, int]:
        out = {k: 0 for k in ("passed", "failed", "error", "skipped")}
        for t in self.tests:
            out[t.outcome] += 1
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "CellResult":
        data = dict(data)
        data["tests"] = [TestCase(**t) for t in data.get("tests", [])]
        return cls(**data)


def _outcome(case: ET.Element) -> tuple[str, str, str]:
    for tag, outcome in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
        el = case.find(tag)
        if el is not None:
            return outcome, el.get("message", "")[:500], (el.text or "")[-DETAIL_LIMIT:]
    return "passed", "", ""


def _cell_of(text: str, ids: list[str], prefix: str) -> str | None:
    """The cell a JUnit classname (``cells.<id>.<module>``) belongs to: the longest id it starts with."""
    text = text.removeprefix(prefix)
    hits = [i for i in ids if text == i or text.startswith(i + ".")]
    return max(hits, key=len) if hits else None


def parse_junit(path: Path, ids: list[str], prefix: str = "cells.") -> dict[str, list[TestCase]]:
    """``{cell id: [TestCase]}`` from pytest's JUnit XML of a session over cell directories."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    out: dict[str, list[TestCase]] = {i: [] for i in ids}
    for suite in suites:
        for case in suite.iter("testcase"):
            classname, name = case.get("classname", ""), case.get("name", "")
            cell = _cell_of(classname, ids, prefix) or _cell_of(name, ids, prefix)
            if cell is None:
                continue
            module = classname[len(prefix) + len(cell) + 1:] if classname else name[len(prefix) + len(cell) + 1:]
            outcome, message, detail = _outcome(case)
            out[cell].append(TestCase(module, name, outcome, float(case.get("time") or 0), message, detail))
    return out


def status_of(tests: list[TestCase]) -> tuple[str, str]:
    if not tests:
        return "error", "no test of this cell reported a result (see the session log)"
    outcomes = {t.outcome for t in tests}
    if outcomes & {"failed", "error"}:
        return "fail", ""
    if "skipped" in outcomes:
        return "skip", "a test skipped: a test that skips did not run"
    return "pass", ""


def _files(out: Path, cell_dir: Path, lab: str) -> dict:
    files: dict = {"topology": str((cell_dir / "topology.yaml").relative_to(out)), "logs": [], "pcaps": []}
    artifacts = out / "artifacts" / lab
    if artifacts.is_dir():
        for f in sorted(p for p in artifacts.rglob("*") if p.is_file()):
            files["pcaps" if f.suffix in (".pcap", ".pcapng") else "logs"].append(str(f.relative_to(out)))
    return files


def collect(out: Path, cells: list[Cell], ran: dict[str, Path], junit: Path | None, session_log: str) -> list[CellResult]:
    """Every cell's result: ran ones from the JUnit and their directories, the rest as excluded or not run."""
    tests = parse_junit(junit, list(ran)) if junit is not None and junit.exists() else {i: [] for i in ran}
    results = []
    for cell in cells:
        if cell.excluded is not None:
            results.append(CellResult(cell.id, cell.values, "excluded", cell.excluded.reason, cell.lab_name))
            continue
        if cell.id not in ran:
            results.append(CellResult(cell.id, cell.values, "not-run", "not selected in this run", cell.lab_name))
            continue
        cell_dir = ran[cell.id]
        meta = json.loads((cell_dir / "cell.json").read_text())
        status, reason = status_of(tests[cell.id])
        versions = {}
        if (cell_dir / VERSIONS_FILE).exists():
            versions = json.loads((cell_dir / VERSIONS_FILE).read_text())
        files = _files(out, cell_dir, cell.lab_name)
        files["session"] = session_log
        results.append(CellResult(cell.id, cell.values, status, reason, cell.lab_name, meta.get("runtime", ""),
                                  tests[cell.id], round(sum(t.time for t in tests[cell.id]), 2), versions, files))
    return results


def write_results(out: Path, header: dict, results: list[CellResult]) -> Path:
    path = out / RESULTS
    data = {"format": FORMAT, **header, "cells": [asdict(r) for r in results]}
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def read_results(out: Path) -> tuple[dict, list[CellResult]]:
    data = json.loads((out / RESULTS).read_text())
    cells = [CellResult.from_dict(c) for c in data.pop("cells")]
    return data, cells


def write_junit(path: Path, name: str, results: list[CellResult]) -> Path:
    """One ``testsuite`` per cell (its axes and versions as properties); excluded cells as one skipped case."""
    root = ET.Element("testsuites", name=f"labkit matrix {name}")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    for r in results:
        suite = ET.SubElement(root, "testsuite", name=r.id)
        props = ET.SubElement(suite, "properties")
        for axis, value in r.axes.items():
            ET.SubElement(props, "property", name=f"axis.{axis}", value=value)
        for key, value in r.versions.items():
            ET.SubElement(props, "property", name=key, value=str(value))
        ET.SubElement(props, "property", name="status", value=r.status)
        cases = r.tests
        if r.status in ("excluded", "not-run", "error") and not cases:
            case = ET.SubElement(suite, "testcase", classname=r.id, name="cell", time="0")
            tag = "error" if r.status == "error" else "skipped"
            ET.SubElement(case, tag, message=f"{r.status}: {r.reason}")
            counts = {"tests": 1, "failures": 0, "errors": int(tag == "error"), "skipped": int(tag == "skipped")}
        else:
            for t in cases:
                case = ET.SubElement(suite, "testcase", classname=f"{r.id}.{t.module}", name=t.name, time=f"{t.time:.3f}")
                if t.outcome != "passed":
                    tag = {"failed": "failure", "error": "error", "skipped": "skipped"}[t.outcome]
                    el = ET.SubElement(case, tag, message=t.message)
                    el.text = t.detail
            c = r.counts()
            counts = {"tests": len(cases), "failures": c["failed"], "errors": c["error"], "skipped": c["skipped"]}
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
        suite.set("time", f"{r.time:.3f}")
        total_time += r.time
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("time", f"{total_time:.3f}")
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path
