"""The matrix report: one self-contained HTML page (inline CSS, inline SVG graphs, no script, no
external resource) with the grid of cells, their times, tests, versions, links to their logs and
pcaps, the excluded cells with their reasons, and each cell's topology graph.

The grid's columns are the values of the last axis, its rows every combination of the others.
"""

from __future__ import annotations

import html
import itertools
import re
import sys
from pathlib import Path
from urllib.parse import quote

from ..errors import LabkitError
from .results import CellResult

REPORT = "report.html"
LABEL = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "skip": "SKIPPED", "not-run": "not run", "excluded": "excluded"}
CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { margin-bottom: .2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #bbb; padding: .3em .6em; vertical-align: top; text-align: left; }
th { background: #f3f3f3; }
table.grid td { min-width: 9em; text-align: center; }
table.grid td a { color: inherit; font-weight: bold; text-decoration: none; }
.st-pass { background: #c8e6c9; } .st-fail { background: #ffcdd2; } .st-error { background: #ffab91; }
.st-skip { background: #fff59d; } .st-excluded { background: #eee; color: #666; } .st-not-run { background: #e3f2fd; }
.small { font-size: 85%; color: #555; } .meta { color: #555; }
pre { background: #f7f7f7; padding: .6em; overflow-x: auto; max-height: 30em; font-size: 12px; }
section.cell { border-left: 6px solid #ccc; padding-left: 1em; margin: 1.5em 0; }
section.st-pass { border-color: #43a047; background: none; } section.st-fail { border-color: #e53935; background: none; }
section.st-error { border-color: #f4511e; background: none; } section.st-skip { border-color: #fbc02d; background: none; }
.graph svg { max-width: 100%; height: auto; }
ul.files { margin: .2em 0; columns: 2; }
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _link(path: str, text: str | None = None) -> str:
    return f'<a href="{_e(quote(path))}">{_e(text or path)}</a>'


def _anchor(cell_id: str) -> str:
    return "cell-" + re.sub(r"[^A-Za-z0-9_-]", "_", cell_id)


def _counts(r: CellResult) -> str:
    c = r.counts()
    text = f"{c['passed']}/{len(r.tests)} passed"
    extra = [f"{c[k]} {k}" for k in ("failed", "error", "skipped") if c[k]]
    return text + (f" ({', '.join(extra)})" if extra else "")


def _grid_cell(r: CellResult | None, notes: dict[str, int]) -> str:
    if r is None:
        return "<td></td>"
    body = f'<a href="#{_anchor(r.id)}">{LABEL[r.status]}</a>'
    if r.status == "excluded":  # the reason once, in the list below the grid; here its number
        body = f'{LABEL[r.status]} <a href="#excluded-{notes[r.reason]}">[{notes[r.reason]}]</a>'
    elif r.status != "not-run":
        body += f'<br><span class="small">{_e(_counts(r))}<br>{r.time:.0f} s</span>'
    title = f"{r.id}: {r.reason}" if r.reason else r.id
    return f'<td class="st-{r.status}" title="{_e(title)}">{body}</td>'


def exclusion_notes(results: list[CellResult]) -> dict[str, int]:
    """Each distinct exclusion reason numbered, in the order the cells show them."""
    notes: dict[str, int] = {}
    for r in results:
        if r.status == "excluded":
            notes.setdefault(r.reason, len(notes) + 1)
    return notes


def grid(axes: dict[str, list[str]], results: list[CellResult]) -> str:
    """Rows: every combination of all axes but the last; columns: the last axis's values."""
    by_values = {tuple(r.axes[a] for a in axes): r for r in results}
    notes = exclusion_notes(results)
    names = list(axes)
    rows, col = names[:-1], names[-1]
    head = "".join(f"<th>{_e(a)}</th>" for a in rows) + "".join(f"<th>{_e(col)} = {_e(v)}</th>" for v in axes[col])
    lines = [f'<table class="grid"><tr>{head}</tr>']
    for combo in itertools.product(*(axes[a] for a in rows)):
        cells = "".join(_grid_cell(by_values.get(combo + (v,)), notes) for v in axes[col])
        lines.append("<tr>" + "".join(f"<th>{_e(v)}</th>" for v in combo) + cells + "</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def _excluded(results: list[CellResult]) -> str:
    notes = exclusion_notes(results)
    if not notes:
        return ""
    rows = ["<h2>Excluded cells</h2>", "<table><tr><th></th><th>reason</th><th>cells</th></tr>"]
    for reason, n in notes.items():
        ids = [r.id for r in results if r.status == "excluded" and r.reason == reason]
        rows.append(f'<tr id="excluded-{n}"><td>[{n}]</td><td>{_e(reason)}</td>'
                    f'<td class="small">{"<br>".join(_e(i) for i in ids)}</td></tr>')
    rows.append("</table>")
    return "\n".join(rows)


_graph_note_printed = False


def graph_svg(topology_file: Path) -> str:
    """The cell's topology graph as inline SVG (labkit.graph), or a note saying why there is none."""
    global _graph_note_printed
    try:
        from .. import graph
        from ..load import load

        svg = graph.render(load(topology_file), "svg").decode("utf-8", "replace")
    except (ImportError, AttributeError) as exc:
        note = f"no graph: labkit.graph is not available in this labkit ({exc})"
    except LabkitError as exc:  # PrerequisiteError names the fix (graphviz), TopologyError the problem
        note = f"no graph: {exc}"
    else:
        svg = re.sub(r"<\?xml.*?\?>|<!DOCTYPE.*?>|<!--.*?-->", "", svg, flags=re.DOTALL).strip()
        return f'<div class="graph">{svg}</div>'
    if not _graph_note_printed:
        print(f"labkit: matrix report: {note}", file=sys.stderr)
        _graph_note_printed = True
    return f'<p class="small">{_e(note)}</p>'


def _versions_table(results: list[CellResult]) -> str:
    keys = ["runtime", "image", "kernel", "frr", "strongswan", "sandbox"]
    ran = [r for r in results if r.versions]
    if not ran:
        return "<p>No cell recorded its versions.</p>"
    used = [k for k in keys if any(k in r.versions for r in ran)]
    used += sorted({k for r in ran for k in r.versions} - set(used))
    rows = [f"<tr><th>cell</th>{''.join(f'<th>{_e(k)}</th>' for k in used)}</tr>"]
    for r in ran:
        rows.append(f'<tr><td><a href="#{_anchor(r.id)}">{_e(r.id)}</a></td>'
                    + "".join(f"<td>{_e(r.versions.get(k, ''))}</td>" for k in used) + "</tr>")
    return "<table>" + "\n".join(rows) + "</table>"


def _files(r: CellResult) -> str:
    f = r.files
    parts = []
    if f.get("topology"):
        parts.append(f"topology: {_link(f['topology'], 'topology.yaml')}")
    if f.get("session"):
        parts.append(f"session log: {_link(f['session'], Path(f['session']).name)}")
    out = "<p>" + " · ".join(parts) + "</p>"
    for key, title in (("pcaps", "pcaps"), ("logs", "daemon logs and configs")):
        items = f.get(key) or []
        if items:
            prefix = f"artifacts/{r.lab}/"
            out += f"<p>{title} ({len(items)}):</p><ul class=\"files\">" + "".join(
                f"<li>{_link(p, p.removeprefix(prefix))}</li>" for p in items) + "</ul>"
        elif key == "pcaps":
            out += "<p>pcaps: none</p>"
    if not f.get("logs"):
        out += "<p>daemon logs: none saved</p>"
    return out


def _tests(r: CellResult) -> str:
    if not r.tests:
        return f"<p>{_e(r.reason)}</p>"
    rows = ["<tr><th>module</th><th>test</th><th>outcome</th><th>time</th></tr>"]
    for t in r.tests:
        detail = ""
        if t.outcome != "passed":
            first = (t.message or t.outcome).strip().splitlines()[0]
            detail = f"<details><summary>{_e(first)}</summary><pre>{_e(t.detail or t.message)}</pre></details>"
        cls = {"passed": "pass", "failed": "fail", "error": "error", "skipped": "skip"}[t.outcome]
        rows.append(f'<tr><td>{_e(t.module)}</td><td>{_e(t.name)}{detail}</td><td class="st-{cls}">{_e(t.outcome)}</td>'
                    f"<td>{t.time:.1f} s</td></tr>")
    return "<table>" + "\n".join(rows) + "</table>"


def _section(out: Path, r: CellResult) -> str:
    axes = ", ".join(f"{a} = {v}" for a, v in r.axes.items())
    versions = " · ".join(f"{k} {v}" for k, v in r.versions.items()) or "not recorded"
    topo = out / r.files["topology"] if r.files.get("topology") else None
    graph = graph_svg(topo) if topo is not None and topo.exists() else '<p class="small">no topology file</p>'
    return (f'<section class="cell st-{r.status}" id="{_anchor(r.id)}">'
            f"<h3>{_e(r.id)}: {LABEL[r.status]}</h3>"
            f'<p class="meta">{_e(axes)} · lab {_e(r.lab)} · {r.time:.1f} s · {_e(_counts(r))}</p>'
            f"<p>versions: {_e(versions)}</p>"
            + (f"<p>{_e(r.reason)}</p>" if r.reason and r.tests else "")
            + _files(r) + _tests(r) + graph + "</section>")


def render(out: Path, header: dict, results: list[CellResult]) -> str:
    """The HTML page for ``results`` of the run described by ``header`` (see results.json)."""
    axes = header["axes"]
    total = {s: sum(r.status == s for r in results) for s in LABEL}
    summary = ", ".join(f"{n} {LABEL[s]}" for s, n in total.items() if n)
    ran = [r for r in results if r.status not in ("excluded", "not-run")]
    reports = [_link("junit.xml"), _link("results.json")] + [_link(p) for p in header.get("session_logs", [])]
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>labkit matrix {_e(header["matrix"])}</title>'
        f"<style>{CSS}</style></head><body>",
        f"<h1>labkit matrix: {_e(header['matrix'])}</h1>",
        f"<p>{_e(header.get('description', ''))}</p>" if header.get("description") else "",
        f'<p class="meta">{_e(header.get("source", ""))} · {len(results)} cells: {_e(summary)}'
        + (f" · wall time {header['wall_time']:.0f} s" if header.get("wall_time") else "")
        + f" · generated {_e(header.get('generated', ''))}</p>",
        "<p>files: " + " · ".join(reports) + "</p>",
        "<h2>Cells</h2>", grid(axes, results),
        "<h2>Versions</h2>", _versions_table(ran),
    ]
    parts.append(_excluded(results))
    parts.append("<h2>Cell details</h2>")
    parts += [_section(out, r) for r in ran] or ["<p>No cell ran.</p>"]
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p) + "\n"


def write(out: Path, header: dict, results: list[CellResult]) -> Path:
    path = out / REPORT
    path.write_text(render(out, header, results))
    return path
