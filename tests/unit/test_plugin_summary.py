"""The host-side closing line of a sandboxed session, read from the inner session's JUnit XML."""

from labkit.pytest_plugin import _junit_summary


def test_totals_from_junit(tmp_path):
    xml = tmp_path / "junit.xml"
    xml.write_text('<testsuites><testsuite tests="11" failures="1" errors="1" skipped="2"/></testsuites>')
    assert _junit_summary(xml, 1) == "sandbox: 7 passed, 2 failed, 2 skipped"


def test_missing_results_are_reported(tmp_path):
    assert "wrote no results (exit code 3)" in _junit_summary(tmp_path / "none.xml", 3)
