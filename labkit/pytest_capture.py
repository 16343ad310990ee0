"""The ``capture`` fixture: captures started by a test, kept as pcaps when it fails.

Registered through :mod:`labkit.pytest_plugin`. Each test's pcaps go to
``<artifacts>/<lab>/pcaps/<test>/<node>-<iface>.pcap`` (``--lab-artifacts``, default
``.labkit-artifacts``) when the test fails, and after a pass too with ``--keep-pcaps``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REPORTS_KEY = pytest.StashKey[dict]()  # item.stash: {"setup"|"call"|"teardown": TestReport}


def artifacts_root(config: pytest.Config) -> Path:
    """Where logs and pcaps of a session go (``--lab-artifacts`` or ``.labkit-artifacts`` in the rootdir)."""
    return Path(config.getoption("lab_artifacts") or Path(str(config.rootpath)) / ".labkit-artifacts")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@=,+-]+", "_", name).strip("_") or "capture"


def pcap_dir(config: pytest.Config, lab_name: str, item: pytest.Item) -> Path:
    return artifacts_root(config) / lab_name / "pcaps" / _safe(item.name)


@pytest.fixture
def capture(lab, request: pytest.FixtureRequest):
    """Name: capture. Scope: function. Depends: lab.

    ``cap = capture("spoke1", "gre1", direction="both", bpf="udp port 500")`` starts a capture at
    once (arguments as :meth:`labkit.lab.Lab.capture`; a segment name captures every port of
    it). ``cap.packets()`` gives Scapy packets, ``cap.stop()`` ends it early. Every capture
    stops when the test ends; its pcap is kept when the test failed, or always with
    ``--keep-pcaps``.
    """
    started = []

    def start(where: str, ifname: str | None = None, **kw):
        cap = lab.capture(where, ifname, **kw)
        started.append(cap)
        return cap

    yield start
    for cap in started:
        if cap.running:
            cap.stop()
    reports = request.node.stash.get(REPORTS_KEY, {})
    failed = any(r.failed for r in reports.values())
    if not started or not (failed or request.config.getoption("keep_pcaps")):
        return
    dest = pcap_dir(request.config, lab.topology.name, request.node)
    dest.mkdir(parents=True, exist_ok=True)
    names: set[str] = set()
    for cap in started:
        name = _safe(cap.label.replace(":", "-"))
        while name in names:
            name += "+"
        names.add(name)
        cap.write_pcap(str(dest / f"{name}.pcap"))
    sys.stderr.write(f"\nlabkit: {len(started)} capture(s) of {request.node.name} saved in {dest}\n")
