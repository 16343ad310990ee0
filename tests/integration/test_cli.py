"""The labkit command on a routed lab (no tunnel), natively on this host: up, status, exec, down, cleanup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from labkit import state
from labkit.wait import wait_until

ROUTED = Path(__file__).resolve().parents[1] / "data" / "routed"


def labkit(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labkit.cli", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    """Lab records in a private directory, so the test sees only its own labs."""
    monkeypatch.setattr(state, "STATE_DIR", tmp_path)
    return {"LABKIT_STATE_DIR": str(tmp_path)}


def test_up_status_exec_down(state_dir):
    up = labkit("up", str(ROUTED), env=state_dir)
    assert up.returncode == 0, up.stderr
    assert "mode: native" in up.stderr  # the choice is always reported
    lab_id = up.stdout.split()[1]
    try:
        status = labkit("status", env=state_dir)
        assert lab_id in status.stdout and "up" in status.stdout
        assert "r1" in status.stdout and "router" in status.stdout
        ping = labkit("exec", "h1", "--", "ping", "-c", "1", "-W", "5", "10.10.2.1", env=state_dir)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        missing = labkit("exec", "nosuch", "--", "true", env=state_dir)
        assert missing.returncode == 2 and "no node 'nosuch'" in missing.stderr
        assert labkit("exec", "h1", "--", "false", env=state_dir).returncode == 1  # the command's rc comes back
    finally:
        down = labkit("down", lab_id, env=state_dir)
    assert down.returncode == 0, down.stderr
    assert lab_id not in state.scan()
    assert "no labs" in labkit("status", env=state_dir).stdout


def test_cleanup_removes_labs_whose_owner_died(state_dir):
    """A pytest-like owner that is SIGKILLed leaves nothing once `labkit cleanup` ran."""
    code = (
        "import signal; from labkit.lab import Lab\n"
        f"lab = Lab.from_path({str(ROUTED)!r}); lab.up(); print(lab.id, flush=True); signal.pause()\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    lab_id = owner.stdout.readline().strip()
    assert lab_id in state.scan()
    owner.send_signal(signal.SIGKILL)
    owner.wait(timeout=30)
    # holders and daemons die with their owner (PR_SET_PDEATHSIG); cleanup sweeps whatever remains
    cleanup = labkit("cleanup", env=state_dir)
    assert cleanup.returncode == 0, cleanup.stderr
    wait_until(lambda: lab_id not in state.scan(), 10, f"lab {lab_id} to vanish")


def test_up_refuses_an_invalid_topology_and_creates_nothing(state_dir, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nnodes:\n  a: {role: hostt}\n")
    before = set(state.scan())
    res = labkit("up", str(bad), env=state_dir)
    assert res.returncode == 1
    assert "bad.yaml:3: nodes.a.role" in res.stderr
    assert set(state.scan()) == before


def test_capture_writes_a_pcap_wireshark_reads(state_dir, tmp_path):
    import select

    from scapy.layers.inet import ICMP
    from scapy.utils import rdpcap

    up = labkit("up", str(ROUTED), env=state_dir)
    assert up.returncode == 0, up.stderr
    lab_id = up.stdout.split()[1]
    pcap = tmp_path / "h1.pcap"
    cap = subprocess.Popen([sys.executable, "-m", "labkit.cli", "capture", "h1:eth0", "-c", "2", "--filter", "icmp",
                            "-w", str(pcap)], stderr=subprocess.PIPE, text=True, env={**os.environ, **state_dir})
    try:
        def started() -> bool:
            ready, _, _ = select.select([cap.stderr], [], [], 0.1)
            return bool(ready) and "capturing on h1:eth0" in cap.stderr.readline()

        wait_until(started, 60, "labkit capture to say it is capturing")
        ping = labkit("exec", "h1", "--", "ping", "-c", "2", "-i", "0.2", "-W", "5", "10.10.2.1", env=state_dir)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert cap.wait(timeout=30) == 0
        summary = cap.stderr.read()
        assert "2 frame(s)" in summary and "icmp 2" in summary, summary
        frames = rdpcap(str(pcap))
        assert [p[ICMP].type for p in frames] == [8, 0]  # both directions by default, in order
        errors = labkit("capture", "nosuch:eth0", env=state_dir)
        assert errors.returncode == 2 and "nodes: h1, h2, r1" in errors.stderr, errors.stderr
        bad = labkit("capture", "h1:eth0", "--filter", "udp port banana", "-w", str(tmp_path / "x.pcap"), env=state_dir)
        assert bad.returncode == 2 and "labkit: error: bad capture filter" in bad.stderr, bad.stderr
        assert not (tmp_path / "x.pcap").exists()
    finally:
        if cap.poll() is None:
            cap.kill()
        labkit("down", lab_id, env=state_dir)
