"""The golden corpus of invalid topologies: every file under tests/errors must fail to load
with exactly the text of its .err file (the absolute path written as the bare file name)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from labkit.errors import Problem, TopologyError
from labkit.load import load

ERR_DIR = Path(__file__).resolve().parent.parent / "errors"
THREE = ERR_DIR / "three_mistakes.yaml"


def failure(case: Path) -> TopologyError:
    with pytest.raises(TopologyError) as info:
        load(case)
    return info.value


def test_corpus_is_complete():
    cases = sorted(ERR_DIR.glob("*.yaml"))
    assert len(cases) >= 20
    assert [c.name for c in cases if not c.with_suffix(".err").exists()] == []
    assert [e.name for e in ERR_DIR.glob("*.err") if not e.with_suffix(".yaml").exists()] == []


@pytest.mark.parametrize("case", sorted(ERR_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_error_message(case: Path):
    expected = case.with_suffix(".err").read_text().removesuffix("\n")
    assert str(failure(case)).replace(str(case), case.name) == expected


def test_three_mistakes_reported_at_once():
    problems = failure(THREE).problems
    assert len(problems) == 3
    assert all(isinstance(p, Problem) and p.file == str(THREE) for p in problems)
    lines = [p.line for p in problems]
    assert None not in lines and len(set(lines)) == 3
    assert lines == sorted(lines)
    assert [p.path for p in problems] == ["links[0].endpoints[1]", "links[1].prefix", "dmvpn.underlay"]


def test_cli_validate_prints_every_problem():
    proc = subprocess.run([sys.executable, "-m", "labkit.cli", "validate", str(THREE)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    reported = re.findall(rf"^{re.escape(str(THREE))}:(\d+): ", proc.stderr, flags=re.M)
    assert len(set(reported)) == 3, proc.stderr
    for problem in failure(THREE).problems:
        assert str(problem) in proc.stderr
