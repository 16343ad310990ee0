"""``labkit matrix`` on the host: the matrix file's validation, the cell product and its exclusions,
patched and materialised cells, CI exports, results from pytest's JUnit, reports and merging.

No lab starts here; the real run is ``labkit matrix matrices/dmvpn.yaml`` in CI (.ci/run).
"""

from __future__ import annotations

import json
import shutil
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from labkit.errors import LabkitError
from labkit.load import load
from labkit.matrix import cells, export, results
from labkit.matrix.run import PYTEST_JUNIT, SESSION_LOG, header_of, prepare_out, pytest_argv, write_all
from labkit.matrix.spec import MatrixError, load_matrix

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "matrices" / "dmvpn.yaml"
PHASE2 = ROOT / "topologies" / "dmvpn_phase2"
ROUTED = ROOT / "tests" / "data" / "routed"


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def test_module(tmp_path: Path) -> Path:
    (tmp_path / "tests").mkdir()
    path = tmp_path / "tests" / "test_cell.py"
    path.write_text("def test_ok(lab):\n    assert lab\n")
    return path


def matrix_file(tmp_path: Path, axes: str, exclude: str = "", base: Path = PHASE2) -> Path:
    return write(tmp_path, f"name: t\nbase: {base}\ntests: [tests/test_cell.py]\naxes:\n"
                 + textwrap.indent(textwrap.dedent(axes), "  ") + (f"exclude:\n{textwrap.dedent(exclude)}" if exclude else ""))


def problems(path: Path) -> list[str]:
    with pytest.raises(MatrixError) as info:
        load_matrix(path)
    return [str(p).replace(str(path), path.name) for p in info.value.problems]


# -- the matrix file ---------------------------------------------------------------------------

def test_shipped_matrix_loads():
    m = load_matrix(SHIPPED)
    assert m.name == "dmvpn" and m.base == PHASE2 / "topology.yaml"
    assert {a: list(v) for a, v in m.axes.items()} == {"phase": ["1", "2", "3"], "ipsec": ["trap", "off", "vici"],
                                                       "routing": ["bgp", "ospf", "eigrp"]}
    assert m.axes["phase"]["1"].base == ROOT / "topologies" / "dmvpn_phase1" / "topology.yaml"
    off = m.axes["ipsec"]["off"].patches
    assert [(p.path, p.value) for p in off] == [(("dmvpn", "ipsec", "enabled"), False)]
    assert m.tests == (ROOT / "matrices" / "tests" / "test_dmvpn_cell.py",)


def test_every_problem_of_a_matrix_file_at_once_with_line_and_field(tmp_path, test_module):
    path = write(tmp_path, """\
        name: t
        base: ../nowhere
        tests: [tests/test_cell.py, tests/test_missing.py]
        axes:
          phase:
            "2": {}
            "3": {sett: {dmvpn.phase: 3}}
          runtime: {netns: {}, lxc: {}}
        exclude:
          - match: {phse: "2"}
            reason: typo in the axis
          - match: {phase: "4", runtime: [netns, kvm]}
            reason: no such values
          - match: {phase: "2"}
        """)
    assert problems(path) == [
        "m.yaml:7: axes.phase.3.sett: unknown field 'sett'\n    hint: did you mean 'set'? allowed fields here: "
        "base, description, image, runtime, set, tests",
        "m.yaml:14: exclude[2]: 'reason' is a required property",
    ]
    path.write_text(path.read_text().replace("sett:", "set:").replace("  - match: {phase: \"2\"}\n", "  - {match: {phase: \"2\"}, reason: fine}\n"))
    assert problems(path) == [
        f"m.yaml:2: base: '../nowhere' is not a topology: {(tmp_path / '../nowhere').resolve()} does not exist\n"
        "    hint: give a directory holding topology.yaml, or a topology file, relative to the matrix file",
        f"m.yaml:3: tests[1]: test module 'tests/test_missing.py' does not exist ({tmp_path / 'tests/test_missing.py'})\n"
        "    hint: test paths are relative to the matrix file",
        "m.yaml:8: axes.runtime.lxc: the runtime axis has a value 'lxc', which is not a runtime\n"
        "    hint: name its values netns, docker, or give each one 'runtime:'",
        "m.yaml:10: exclude[0].match.phse: unknown axis 'phse'\n    hint: did you mean 'phase'? axes: phase, runtime",
        "m.yaml:12: exclude[1].match.phase: axis 'phase' has no value '4'\n    hint: its values: 2, 3",
        "m.yaml:12: exclude[1].match.runtime[1]: axis 'runtime' has no value 'kvm'\n    hint: its values: netns, lxc",
    ]


def test_names_are_read_as_written(tmp_path, test_module):
    """``off`` and ``2`` are names of values, in the axes and in exclusions, not a boolean and an int."""
    path = matrix_file(tmp_path, """\
        ipsec: {on: {}, off: {set: {dmvpn.ipsec.enabled: false}}}
        phase: {2: {}, 3: {set: {dmvpn.phase: 3}}}
        """, exclude="  - {match: {ipsec: off, phase: 3}, reason: not today}\n")
    m = load_matrix(path)
    assert list(m.axes["ipsec"]) == ["on", "off"] and list(m.axes["phase"]) == ["2", "3"]
    assert m.axes["ipsec"]["off"].patches[0].value is False
    assert [c.id for c in cells.product(m) if not c.runnable] == ["ipsec-off.phase-3"]


def test_duplicate_keys_and_yaml_syntax(tmp_path):
    path = write(tmp_path, "name: t\nname: u\nbase: x\ntests: [test_a.py]\naxes: {a: {b: {}}}\n")
    assert problems(path)[0] == ("m.yaml:2: name: duplicate key 'name' (first at line 1)\n"
                                 "    hint: YAML would silently keep only the last one; rename or merge them")
    path.write_text("name: [\n")
    assert problems(path)[0].startswith("m.yaml:2: <top>: YAML syntax error")


# -- cells -------------------------------------------------------------------------------------

def test_product_and_exclusions_of_the_shipped_matrix():
    m = load_matrix(SHIPPED)
    all_cells = cells.product(m)
    assert len(all_cells) == 27
    assert all_cells[0].id == "phase-1.ipsec-trap.routing-bgp"  # the first axis varies slowest
    assert [c.id for c in all_cells if c.runnable] == [
        "phase-1.ipsec-trap.routing-ospf", "phase-1.ipsec-off.routing-ospf",
        "phase-2.ipsec-trap.routing-bgp", "phase-2.ipsec-off.routing-bgp",
        "phase-3.ipsec-trap.routing-bgp", "phase-3.ipsec-off.routing-bgp"]
    by_id = {c.id: c for c in all_cells}
    assert by_id["phase-2.ipsec-vici.routing-eigrp"].excluded.index == 0  # the first matching rule names it
    assert "patches" in by_id["phase-2.ipsec-vici.routing-bgp"].excluded.reason
    assert "eigrpd" in by_id["phase-2.ipsec-off.routing-eigrp"].excluded.reason


def test_shipped_cells_materialise_as_valid_labs(tmp_path):
    m = load_matrix(SHIPPED)
    dirs = cells.materialise(m, cells.product(m), tmp_path)
    assert len(dirs) == 6
    for cid, d in dirs.items():
        topo = load(d / "topology.yaml")
        meta = cells.read_cell(d)
        assert topo.name == cid and meta["lab"] == cid and meta["runtime"] == "netns"
        assert (d / "test_dmvpn_cell.py").read_text() == m.tests[0].read_text()
        assert "labkit.matrix" in (d / "conftest.py").read_text()
        phase, ipsec = meta["axes"]["phase"], meta["axes"]["ipsec"]
        assert topo.dmvpn.phase == int(phase) and topo.dmvpn.ipsec.enabled == (ipsec == "trap")
        assert topo.dmvpn.protocol == ("ospf" if phase == "1" else "bgp")
    assert (tmp_path / "phase-2.ipsec-off.routing-bgp" / "topology.yaml").read_text().startswith(
        "# yaml-language-server: $schema=")


def test_patches_nest_remove_and_index(tmp_path, test_module):
    path = matrix_file(tmp_path, """\
        knobs:
          all:
            set:
              dmvpn.nhrp.holdtime: 30
              dmvpn.ipsec.proposals: null
              links.0.prefix: 10.9.0.0/24
              nodes.h0.routes: [{to: default, via: 10.9.0.1}]
        """)
    m = load_matrix(path)
    plan, found = cells.plan_cell(m, cells.product(m)[0])
    assert found == []
    dm = plan.topology["dmvpn"]
    assert dm["nhrp"]["holdtime"] == 30 and "proposals" not in dm["ipsec"]
    assert plan.topology["links"][0]["prefix"] == "10.9.0.0/24"
    assert plan.topology["nodes"]["h0"] == {"role": "host", "routes": [{"to": "default", "via": "10.9.0.1"}]}
    assert plan.topology["name"] == "knobs-all"


def test_an_invalid_cell_names_the_cell_the_matrix_line_and_the_exclusion(tmp_path, test_module):
    path = matrix_file(tmp_path, """\
        phase:
          "2": {}
          "1": {set: {dmvpn.phase: 1}}
        routing:
          bgp: {}
          ospf: {set: {dmvpn.routing.protocol: ospf}}
        """, exclude="  - {match: {phase: \"1\", routing: ospf}, reason: phase 1 lab test elsewhere}\n")
    m = load_matrix(path)
    with pytest.raises(MatrixError) as info:
        cells.materialise(m, cells.product(m), tmp_path / "out")
    assert [str(p).replace(str(path), "m.yaml") for p in info.value.problems] == [
        "m.yaml:10: axes.routing.ospf.set.dmvpn.routing.protocol: cell phase-2.routing-ospf is not a valid topology: "
        "dmvpn.routing.protocol: ospf is supported with phase 1 only; phase 2 labs route with BGP\n"
        "    hint: set dmvpn.routing.protocol: bgp, or dmvpn.phase: 1; or exclude the cell with a reason: "
        "{match: {phase: \"2\", routing: ospf}, reason: ...}",
        "m.yaml:7: axes.phase.1.set.dmvpn.phase: cell phase-1.routing-bgp is not a valid topology: "
        "dmvpn.routing.protocol: phase 1 runs OSPF over the tunnel, not bgp\n"
        "    hint: set dmvpn.routing.protocol: ospf; or exclude the cell with a reason: "
        "{match: {phase: \"1\", routing: bgp}, reason: ...}",
    ]


def test_conflicting_axes_and_bad_paths_are_cell_problems(tmp_path, test_module):
    path = matrix_file(tmp_path, """\
        a: {x: {set: {dmvpn.nhrp.holdtime: 30}}, other: {base: routed}}
        b: {y: {set: {dmvpn.nhrp: {holdtime: 40}}}, z: {set: {links.9.prefix: 10.0.0.0/24, name.x: 1}}}
        """)
    shutil.copytree(ROUTED, tmp_path / "routed")
    m = load_matrix(path)
    found = {c.id: [p.message for p in cells.plan_cell(m, c)[1]] for c in cells.product(m)}
    assert found["a-x.b-y"] == ["cell a-x.b-y: this patch and axes.a.x.set.dmvpn.nhrp.holdtime both set dmvpn.nhrp"]
    assert found["a-x.b-z"] == [
        f"cell a-x.b-z: cannot set links.9.prefix in {PHASE2 / 'topology.yaml'}: links is a list of 3: 9 is not an index of it",
        f"cell a-x.b-z: cannot set name.x in {PHASE2 / 'topology.yaml'}: name is 'dmvpn_phase2', not a mapping or list "
        "to set 'x' in"]
    assert found["a-other.b-y"] == []  # the routed lab gets a dmvpn.nhrp it cannot use: the loader says so later


def test_runtime_axis_and_image(tmp_path, test_module):
    path = matrix_file(tmp_path, """\
        runtime: {netns: {}, docker: {}}
        image: {stock: {}, v2: {image: "labkit/node:v2"}}
        """, exclude="  - {match: {runtime: netns, image: v2}, reason: images are docker's}\n")
    m = load_matrix(path)
    dirs = cells.materialise(m, cells.product(m), tmp_path / "out")
    meta = {cid: cells.read_cell(d) for cid, d in dirs.items()}
    assert {cid: (x["runtime"], x["image"]) for cid, x in meta.items()} == {
        "runtime-netns.image-stock": ("netns", None), "runtime-docker.image-stock": ("docker", None),
        "runtime-docker.image-v2": ("docker", "labkit/node:v2")}
    topo = load(dirs["runtime-docker.image-v2"] / "topology.yaml")
    assert {n.image for n in topo.nodes.values()} == {"labkit/node:v2"}
    assert pytest_argv(["cells/a"], ["netns", "docker"], 2)[-6:] == [
        "--runtime", "netns,docker", "-n", "2", "--dist", "loadfile", "cells/a"][-6:]


def test_select_by_id_or_pattern(tmp_path):
    m = load_matrix(SHIPPED)
    all_cells = cells.product(m)
    assert [c.id for c in cells.select(all_cells, ["phase-2.*"])] == [
        "phase-2.ipsec-trap.routing-bgp", "phase-2.ipsec-off.routing-bgp"]
    with pytest.raises(MatrixError, match=r"phase-2\.ipsec-vici\.routing-bgp: excluded: nhrpd-driven"):
        cells.select(all_cells, ["phase-2.ipsec-vici.routing-bgp"])
    with pytest.raises(MatrixError, match=r"no such cell\n    hint: did you mean phase-2\.ipsec-trap\.routing-bgp"):
        cells.select(all_cells, ["phase-2.ipsec-trap.routing-bgpp"])


def test_long_cell_ids_get_a_short_lab_name():
    cell = cells.Cell("a" * 30 + "." + "b" * 30, {})
    assert cell.lab_name.startswith("cell-") and len(cell.lab_name) == 15
    assert cells.Cell("phase-2.ipsec-off", {}).lab_name == "phase-2.ipsec-off"


# -- CI exports --------------------------------------------------------------------------------

def test_github_export_is_a_strategy_matrix():
    data, usage = export.github(load_matrix(SHIPPED), "matrices/dmvpn.yaml")
    assert "\n" not in data  # one line, for $GITHUB_OUTPUT
    assert json.loads(data)["include"][2] == {"cell": "phase-2.ipsec-trap.routing-bgp"}
    assert len(json.loads(data)["include"]) == 6
    assert "fromJSON(needs.plan.outputs.matrix)" in usage and "labkit matrix-merge" in usage
    assert all(line.startswith("#") for line in usage.splitlines())


def test_gitlab_export_is_parallel_matrix_yaml():
    text = export.gitlab(load_matrix(SHIPPED), "matrices/dmvpn.yaml")
    jobs = yaml.safe_load(text)
    cell = jobs["labkit-matrix-cell"]
    assert cell["parallel"]["matrix"] == [{"CELL": [c.id for c in cells.product(load_matrix(SHIPPED)) if c.runnable]}]
    assert 'labkit matrix matrices/dmvpn.yaml --cell "$CELL" --out "labkit-matrix/$CELL"' in cell["script"]
    merge = jobs["labkit-matrix-report"]
    assert merge["needs"] == [{"job": "labkit-matrix-cell", "artifacts": True}]
    assert merge["artifacts"]["reports"]["junit"] == "labkit-matrix-report/junit.xml"


# -- results, reports and merging, from a fabricated session ----------------------------------

def fake_run(out: Path, ran: dict[str, str]) -> tuple[dict, list]:
    """A matrix 'run' of the shipped matrix without labs: ``ran`` maps cell ids to an outcome
    (``pass`` or ``fail``); pytest's JUnit, versions, logs and a pcap are made up as a session writes them."""
    m = load_matrix(SHIPPED)
    prepare_out(out)
    all_cells = cells.product(m)
    dirs = cells.materialise(m, [c for c in all_cells if c.id in ran], out / "cells")
    suite = ET.Element("testsuite", name="pytest")
    for cid, outcome in ran.items():
        for name in ("test_every_spoke_registered_at_the_hub", "test_every_host_reaches_every_other_host"):
            case = ET.SubElement(suite, "testcase", classname=f"cells.{cid}.test_dmvpn_cell", name=f"{name}[netns]",
                                 time="30.5")
            if outcome == "fail" and name.endswith("host"):
                ET.SubElement(case, "failure", message="WaitTimeout: h1 to reach h2").text = "traceback <here>"
        (dirs[cid] / cells.VERSIONS_FILE).write_text(json.dumps({"runtime": "netns", "frr": "8.4.4",
                                                                 "strongswan": "5.9.8", "kernel": "6.1.0-56-amd64"}))
        logs = out / "artifacts" / cid / "hub" / "log"
        logs.mkdir(parents=True)
        (logs / "nhrpd.log").write_text("nhrpd\n")
        pcaps = out / "artifacts" / cid / "pcaps" / "test_underlay"
        pcaps.mkdir(parents=True)
        (pcaps / "underlay-all.pcap").write_bytes(b"\xd4\xc3\xb2\xa1")
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(out / PYTEST_JUNIT)
    (out / SESSION_LOG).write_text("session\n")
    found = results.collect(out, all_cells, dirs, out / PYTEST_JUNIT, SESSION_LOG)
    header = header_of(m, wall_time=95.0, pytest_exit=1, session_logs=[SESSION_LOG])
    write_all(out, header, found)
    return header, found


def test_results_from_pytest_junit(tmp_path):
    _, found = fake_run(tmp_path, {"phase-2.ipsec-trap.routing-bgp": "pass", "phase-1.ipsec-off.routing-ospf": "fail"})
    by_id = {r.id: r for r in found}
    ok, bad = by_id["phase-2.ipsec-trap.routing-bgp"], by_id["phase-1.ipsec-off.routing-ospf"]
    assert (ok.status, ok.time, ok.counts()["passed"]) == ("pass", 61.0, 2)
    assert bad.status == "fail" and bad.tests[1].message == "WaitTimeout: h1 to reach h2"
    assert ok.versions["frr"] == "8.4.4"
    assert ok.files["pcaps"] == ["artifacts/phase-2.ipsec-trap.routing-bgp/pcaps/test_underlay/underlay-all.pcap"]
    assert ok.files["logs"] == ["artifacts/phase-2.ipsec-trap.routing-bgp/hub/log/nhrpd.log"]
    assert by_id["phase-3.ipsec-off.routing-bgp"].status == "not-run"
    assert by_id["phase-2.ipsec-vici.routing-bgp"].status == "excluded"
    junit = ET.parse(tmp_path / "junit.xml").getroot()
    assert (junit.get("tests"), junit.get("failures"), junit.get("skipped")) == ("29", "1", "25")
    suites = {s.get("name"): s for s in junit.findall("testsuite")}
    assert len(suites) == 27 and suites["phase-2.ipsec-vici.routing-bgp"].find("testcase/skipped") is not None
    assert {p.get("name"): p.get("value") for p in suites[ok.id].find("properties")}["axis.phase"] == "2"


def test_html_report_is_self_contained(tmp_path):
    fake_run(tmp_path, {"phase-2.ipsec-trap.routing-bgp": "pass", "phase-1.ipsec-off.routing-ospf": "fail"})
    page = (tmp_path / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
        'xmlns:xlink="http://www.w3.org/1999/xlink"', "") and "https://" not in page
    grid = page[page.index('<table class="grid">'):page.index("</table>")]
    assert grid.count('<td class="st-pass"') == 1 and grid.count('<td class="st-fail"') == 1
    assert grid.count('<td class="st-excluded"') == 21 and grid.count('<td class="st-not-run"') == 4
    assert 'href="artifacts/phase-2.ipsec-trap.routing-bgp/pcaps/test_underlay/underlay-all.pcap"' in page
    assert 'href="artifacts/phase-2.ipsec-trap.routing-bgp/hub/log/nhrpd.log"' in page
    assert 'href="cells/phase-2.ipsec-trap.routing-bgp/topology.yaml"' in page
    assert "2/2 passed" in page and "61 s" in page and "frr 8.4.4" in page
    assert page.count("<svg") == 2  # each cell that ran: its topology graph, inline
    assert "FRR&#x27;s eigrpd cannot peer" in page  # excluded cells with their reasons


def test_merge_folds_ci_jobs_into_one_report(tmp_path):
    jobs = tmp_path / "jobs"
    fake_run(jobs / "job1", {"phase-2.ipsec-trap.routing-bgp": "pass"})
    fake_run(jobs / "job2", {"phase-1.ipsec-off.routing-ospf": "fail"})
    merged = tmp_path / "merged"
    _, found = export.merge([jobs / "job1", jobs / "job2"], merged)
    by_id = {r.id: r for r in found}
    assert by_id["phase-2.ipsec-trap.routing-bgp"].status == "pass"
    assert by_id["phase-1.ipsec-off.routing-ospf"].status == "fail"
    assert by_id["phase-3.ipsec-off.routing-bgp"].status == "error"  # no job ran it: that fails the merged run
    assert by_id["phase-3.ipsec-off.routing-bgp"].reason.startswith("no merged run ran this cell")
    assert by_id["phase-1.ipsec-off.routing-ospf"].files["session"] == "sessions/01-job2.log"
    for r in (by_id["phase-2.ipsec-trap.routing-bgp"], by_id["phase-1.ipsec-off.routing-ospf"]):
        assert (merged / r.files["topology"]).exists() and all((merged / p).exists() for p in r.files["pcaps"] + r.files["logs"])
    assert (merged / "report.html").exists() and (merged / "sessions" / "01-job2.log").exists()
    assert ET.parse(merged / "junit.xml").getroot().get("tests") == str(4 + 21 + 4)
    # a directory holding the jobs' output directories (as CI downloads them) merges the same
    _, again = export.merge([jobs], tmp_path / "merged2")
    assert [r.status for r in again] == [r.status for r in found]


def test_merge_refuses_a_cell_run_twice_and_other_matrices(tmp_path):
    fake_run(tmp_path / "job1", {"phase-2.ipsec-trap.routing-bgp": "pass"})
    fake_run(tmp_path / "job2", {"phase-2.ipsec-trap.routing-bgp": "pass"})
    with pytest.raises(LabkitError, match="cell phase-2.ipsec-trap.routing-bgp ran in both"):
        export.merge([tmp_path / "job1", tmp_path / "job2"], tmp_path / "merged")
    data = json.loads((tmp_path / "job2" / "results.json").read_text())
    (tmp_path / "job2" / "results.json").write_text(json.dumps({**data, "matrix": "other"}))
    with pytest.raises(LabkitError, match="holds matrix 'other'"):
        export.merge([tmp_path / "job1", tmp_path / "job2"], tmp_path / "merged")
    with pytest.raises(LabkitError, match="holds no results.json"):
        export.merge([tmp_path / "job1", tmp_path / "nothing"], tmp_path / "merged")


def test_an_output_directory_of_something_else_is_refused(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(LabkitError, match="not empty and was not written by labkit matrix"):
        prepare_out(tmp_path)
    assert (tmp_path / "precious.txt").exists()


# -- the plugin pins a cell's tests to its runtime ---------------------------------------------

def test_plugin_runs_a_cell_on_its_runtime_only(pytester):
    """In a session over several runtimes, a directory with a cell.json keeps only its runtime."""
    pytester.mkdir("cell")
    pytester.path.joinpath("cell", "cell.json").write_text(json.dumps({"runtime": "docker"}))
    pytester.path.joinpath("cell", "test_a.py").write_text("def test_a(labkit_runtime):\n    assert labkit_runtime\n")
    pytester.mkdir("plain")
    pytester.path.joinpath("plain", "test_b.py").write_text("def test_b(labkit_runtime):\n    assert labkit_runtime\n")
    result = pytester.runpytest("--runtime", "netns,docker", "--collect-only", "-q", "--import-mode=importlib")
    ids = sorted(line for line in result.outlines if "::" in line)
    assert ids == ["cell/test_a.py::test_a[docker]", "plain/test_b.py::test_b[docker]", "plain/test_b.py::test_b[netns]"]


def test_versions_of_a_netns_cell_are_this_hosts_packages(tmp_path):
    import os
    import subprocess

    from labkit.matrix import versions

    (tmp_path / cells.CELL_FILE).write_text(json.dumps({"runtime": "netns", "image": None}))
    found = versions.record(tmp_path, "netns")
    frr = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "frr"], capture_output=True, text=True).stdout
    assert found["frr"] and frr.split(":")[-1].startswith(found["frr"]), (found, frr)
    assert found["strongswan"] and (found["kernel"], found["runtime"]) == (os.uname().release, "netns")
    assert json.loads((tmp_path / cells.VERSIONS_FILE).read_text()) == found
