"""``labkit matrix`` end to end on real labs that this kernel hosts natively (routed, no tunnel):
the command, one pytest session over the cells with xdist, each cell's lab, its versions, logs
and pcaps, the reports, and a CI-style run of one cell per job folded by ``labkit matrix-merge``.

The DMVPN matrix itself (matrices/dmvpn.yaml, through the VM sandbox) runs in .ci/run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROUTED = Path(__file__).resolve().parents[1] / "data" / "routed"

REACH = '''
from labkit.wait import wait_until


def test_h1_reaches_h2_across_the_router(lab, capture):
    cap = capture("r1", "eth2")
    assert lab.ping("h1", "h2", timeout=2), "h1 does not reach h2"
    wait_until(cap.counts, 10, "h2's reply captured on r1:eth2")
'''
WRONG_LAN = '''
def test_h2_lan_is_the_default_one(lab):
    assert str(lab.address_of("h2")) == "10.10.2.1", lab.address_of("h2")
'''


def labkit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labkit.cli", *args], capture_output=True, text=True, timeout=600,
                          cwd=str(cwd), env={**os.environ, "LABKIT_SANDBOX": "auto"})


@pytest.fixture
def matrix(tmp_path: Path) -> Path:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_reach.py").write_text(REACH)
    (tmp_path / "tests" / "test_lan.py").write_text(WRONG_LAN)
    path = tmp_path / "routed.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: routed
        base: {ROUTED}
        tests: [tests/test_reach.py, tests/test_lan.py]
        axes:
          lan2:
            default: {{}}
            moved: {{set: {{links.1.prefix: 10.10.3.0/24}}}}
          runtime: {{netns: {{}}}}
        """))
    return path


def test_a_matrix_runs_every_cell_as_a_lab_and_reports_it(matrix: Path, tmp_path: Path):
    out = tmp_path / "out"
    run = labkit("matrix", str(matrix), "--out", str(out), "-n", "2", cwd=tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr  # the moved LAN fails test_lan, as it should
    assert "PASS     lan2-default.runtime-netns" in run.stdout and "FAIL     lan2-moved.runtime-netns" in run.stdout
    assert "mode: native" in run.stderr and "2 in parallel" in run.stderr
    data = json.loads((out / "results.json").read_text())
    cells = {c["id"]: c for c in data["cells"]}
    ok, moved = cells["lan2-default.runtime-netns"], cells["lan2-moved.runtime-netns"]
    assert sorted((t["name"], t["outcome"]) for t in ok["tests"]) == [
        ("test_h1_reaches_h2_across_the_router[netns]", "passed"), ("test_h2_lan_is_the_default_one[netns]", "passed")]
    assert {t["name"]: t["outcome"] for t in moved["tests"]}["test_h2_lan_is_the_default_one[netns]"] == "failed"
    assert "10.10.3.1" in {t["name"]: t["message"] for t in moved["tests"]}["test_h2_lan_is_the_default_one[netns]"]
    assert ok["versions"]["runtime"] == "netns" and ok["versions"]["kernel"] == os.uname().release
    assert ok["versions"]["frr"] and ok["versions"]["strongswan"]
    # every lab's logs (--keep-logs) and every capture (--keep-pcaps), under the cell's lab name
    assert any(p.endswith("r1/log/zebra.log") for p in ok["files"]["logs"]), ok["files"]
    assert [p for p in ok["files"]["pcaps"] if p.endswith("r1-eth2.pcap")], ok["files"]
    assert all((out / p).is_file() for p in ok["files"]["logs"] + ok["files"]["pcaps"])
    page = (out / "report.html").read_text()
    assert '<td class="st-pass" title="lan2-default.runtime-netns">' in page
    assert '<td class="st-fail" title="lan2-moved.runtime-netns">' in page
    assert "<svg" in page and "test_h2_lan_is_the_default_one" in page
    junit = ET.parse(out / "junit.xml").getroot()
    assert (junit.get("tests"), junit.get("failures")) == ("4", "1")


def test_one_cell_per_job_then_merge(matrix: Path, tmp_path: Path):
    jobs = tmp_path / "jobs"
    for cell in ("lan2-default.runtime-netns", "lan2-moved.runtime-netns"):
        run = labkit("matrix", str(matrix), "--cell", cell, "--out", str(jobs / cell), cwd=tmp_path)
        assert run.returncode == (0 if "default" in cell else 1), run.stdout + run.stderr
        statuses = {c["id"]: c["status"] for c in json.loads((jobs / cell / "results.json").read_text())["cells"]}
        assert sorted(statuses.values()) == sorted(["pass" if "default" in cell else "fail", "not-run"])
    merged = labkit("matrix-merge", str(jobs), "--out", str(tmp_path / "report"), cwd=tmp_path)
    assert merged.returncode == 1, merged.stdout + merged.stderr
    assert "1 pass, 1 fail" in merged.stdout
    data = json.loads((tmp_path / "report" / "results.json").read_text())
    for cell in data["cells"]:
        assert all((tmp_path / "report" / p).is_file() for p in cell["files"]["logs"] + cell["files"]["pcaps"])
        assert (tmp_path / "report" / cell["files"]["session"]).is_file()
