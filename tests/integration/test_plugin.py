"""The pytest plugin, exercised through pytester on a routed lab that runs on this host."""

from __future__ import annotations

import shutil
from pathlib import Path

ROUTED = Path(__file__).resolve().parents[1] / "data" / "routed" / "topology.yaml"

TESTS = '''
def test_lab_fixture(lab, lab_node):
    assert lab.topology.name == "routed"
    assert lab_node("r1").spec.role == "router"

def test_path_through_router(lab):
    path = lab.path("h1", "h2")
    assert path.reached and path.nodes == ("r1", "h2"), str(path)

def test_testinfra_host(lab_host):
    assert lab_host("h1").run("hostname").stdout.strip() == "h1"
    assert lab_host("r1").file("/run/labkit/frr/zebra.conf").contains("hostname r1")

def test_wait_until_names_what_it_waited_for(wait_until):
    import pytest
    with pytest.raises(AssertionError, match="Timeout after 0.2s waiting for: the moon"):
        wait_until(lambda: False, 0.2, "the moon")
'''


def _lab_dir(pytester) -> None:
    shutil.copy(ROUTED, pytester.path / "topology.yaml")
    pytester.makepyfile(test_routed=TESTS)


def test_fixtures_and_mode_report(pytester):
    _lab_dir(pytester)
    result = pytester.runpytest_subprocess("-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["labkit: mode: native (host kernel): host kernel has veth; runtime netns"])


def test_skipped_lab_test_fails_under_ci(pytester, monkeypatch):
    """A skip is a test that did not run: with CI set the session fails and names it."""
    monkeypatch.setenv("CI", "true")
    topo = pytester.mkdir("topologies") / "routed"
    topo.mkdir()
    shutil.copy(ROUTED, topo / "topology.yaml")
    (topo / "test_skip.py").write_text("import pytest\n\ndef test_x():\n    pytest.skip('no reason')\n")
    result = pytester.runpytest_subprocess("topologies", "-p", "no:cacheprovider")
    assert result.ret == 1
    result.stderr.fnmatch_lines(["*1 lab test(s) skipped*", "*test_skip.py::test_x*"])


def test_invalid_topology_errors_before_any_lab(pytester):
    (pytester.path / "topology.yaml").write_text("name: bad\nnodes:\n  a: {role: hubb}\n")
    pytester.makepyfile(test_bad="def test_x(lab):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*topology.yaml:3: nodes.a.role: 'hubb' is not supported*"])
