"""Reliability: SIGKILL at any moment, parallel labs of one topology, and a host left as it was found.

The routed lab (no tunnel) runs natively here on both runtimes; the sandbox VM test boots the
VM once, because a VM is what a SIGKILLed `labkit run` must not leave running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from labkit import hoststate, state
from labkit.lab import Lab
from labkit.runtime import engine
from labkit.sandbox import vm
from labkit.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
ROUTED = ROOT / "tests" / "data" / "routed"
RUNTIMES = ("netns", "docker")


@pytest.fixture(scope="module", params=RUNTIMES)
def runtime(request) -> str:
    if request.param == "docker":  # the engine and the image are prerequisites: an error names the fix
        engine.require_images(engine.connect(), {engine.DEFAULT_IMAGE})
    return request.param


def _interruptible() -> None:
    """preexec_fn: SIGINT back to its default, as in a terminal. A session started in the background
    by a non-interactive shell inherits SIGINT ignored, and Python then keeps ignoring it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _labkit(*args: str, env: dict, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "labkit.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=cwd, preexec_fn=_interruptible)


def _kill_at(proc: subprocess.Popen, marker: str) -> list[str]:
    """SIGKILL ``proc`` as soon as its stderr shows ``marker``; return the lines seen."""
    seen = []
    for line in proc.stderr:  # bounded: each step of `labkit` has its own timeout
        seen.append(line.rstrip())
        if marker in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"{marker!r} never appeared:\n" + "\n".join(seen)
    return seen


def _lab_id(lines: list[str], env: dict) -> str:
    """The lab `labkit up` had started, from the record it wrote before creating anything."""
    recs = state.records()
    assert len(recs) == 1 and recs[0].status == "starting", (recs, lines)
    return recs[0].id


def _cleanup(env: dict) -> str:
    done = subprocess.run([sys.executable, "-m", "labkit.cli", "cleanup"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("moment", ["wiring links", "starting daemons"])
def test_sigkill_in_the_middle_of_up_then_cleanup_leaves_zero_residue(runtime, moment, tmp_path, monkeypatch):
    monkeypatch.setattr(state, "STATE_DIR", tmp_path)
    env = {**os.environ, "LABKIT_STATE_DIR": str(tmp_path)}
    up = _labkit("up", str(ROUTED), "--runtime", runtime, env=env)
    lines = _kill_at(up, moment)
    lab_id = _lab_id(lines, env)
    assert state.residue(lab_id), "the killed `labkit up` had created nothing: the test proves nothing"
    assert lab_id in state.scan() and state.scan()[lab_id]["orphaned"]
    out = _cleanup(env)
    assert lab_id in out
    wait_until(lambda: not state.residue(lab_id, owner=up.pid), 30, f"every resource of lab {lab_id} to be gone")
    assert state.records() == []  # the `starting` record of the dead run went too


@pytest.mark.parametrize("moment", ["wiring links", "starting daemons"])
def test_ctrl_c_during_up_tears_the_lab_down(runtime, moment, tmp_path, monkeypatch):
    monkeypatch.setattr(state, "STATE_DIR", tmp_path)
    env = {**os.environ, "LABKIT_STATE_DIR": str(tmp_path)}
    up = _labkit("up", str(ROUTED), "--runtime", runtime, env=env)
    seen = []
    for line in up.stderr:
        seen.append(line.rstrip())
        if moment in line:
            lab_id = state.records()[0].id
            assert state.residue(lab_id), "nothing existed yet: the interrupt would prove nothing"
            up.send_signal(signal.SIGINT)
            break
    rest = up.stderr.read()
    assert up.wait(timeout=120) == 130, "\n".join(seen) + rest
    assert "bring-up failed; tearing down" in rest and "labkit: interrupted" in rest, rest
    assert state.residue(lab_id, owner=up.pid) == []
    assert state.records() == []


def test_ctrl_c_in_a_pytest_session_tears_its_lab_down(runtime, tmp_path):
    """A user presses Ctrl-C while a lab test runs: the session tears the lab down at its end."""
    test = tmp_path / "test_block.py"
    test.write_text("import signal, pytest\n"
                    f"pytestmark = pytest.mark.topology({str(ROUTED / 'topology.yaml')!r})\n"
                    "def test_block(lab):\n"
                    "    print('LAB', lab.id, flush=True)\n"
                    "    signal.pause()\n")
    session = subprocess.Popen([sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider", str(test),
                                "--runtime", runtime], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, cwd=tmp_path, preexec_fn=_interruptible)
    lab_id = ""
    for line in session.stdout:  # bounded by the lab fixture's own timeouts
        if "LAB " in line:
            lab_id = line.split("LAB ", 1)[1].split()[0]
            break
    assert lab_id, "the session ended before its lab came up"
    assert state.residue(lab_id)
    session.send_signal(signal.SIGINT)
    out, _ = session.communicate(timeout=120)
    assert "KeyboardInterrupt" in out
    assert f"tearing down lab {lab_id}" in out and "residue" not in out
    assert state.residue(lab_id, owner=session.pid) == []


def test_a_lab_being_started_is_not_an_orphan(tmp_path, monkeypatch):
    """While `labkit up` runs, its record protects the lab from a concurrent `labkit cleanup`."""
    monkeypatch.setattr(state, "STATE_DIR", tmp_path)
    rec = state.LabRecord("lkfeed00", "x", "netns", {}, os.getpid(), 0.0, status="starting")
    state.save(rec)
    assert rec.protected()
    state.cleanup()
    assert [r.id for r in state.records()] == ["lkfeed00"]
    dead = subprocess.Popen(["true"])
    dead.wait()
    state.save(state.LabRecord("lkfeed01", "x", "netns", {}, dead.pid, 0.0, status="starting"))
    state.cleanup()
    assert [r.id for r in state.records()] == ["lkfeed00"]  # a dead starter's record is dropped


def test_sigkill_of_a_sandboxed_run_leaves_no_vm(tmp_path, monkeypatch):
    """`labkit run` boots the VM; SIGKILL while the guest builds the lab: the watchdog kills the VM."""
    monkeypatch.setattr(state, "STATE_DIR", tmp_path / "state")
    env = {**os.environ, "LABKIT_STATE_DIR": str(tmp_path / "state")}
    run = _labkit("run", str(ROOT / "topologies" / "dmvpn_phase2"), "--sandbox", "on", env=env, cwd=tmp_path)
    _kill_at(run, "inside the VM sandbox")  # printed by labkit in the guest: the VM is up
    wait_until(lambda: not state.residue("-", owner=run.pid), 60,
               f"the sandbox VM of the killed run (pid {run.pid}) and its temp dirs to be gone, with no cleanup")
    assert not list(tmp_path.glob(".labkit-run-*")), "the run's report dir in the working directory was left"
    assert vm.orphaned_vms() == {}
    _cleanup(env)
    assert not state.residue("-", owner=run.pid)


PARALLEL_TEST = """
    import json, os, pytest
    pytestmark = pytest.mark.topology({topology!r})

    def test_lab(lab, labkit_runtime):
        assert lab.ping("h1", "h2", timeout=5)
        assert [h.node for h in lab.path("h1", "h2").hops] == ["r1", "h2"]
        with open({out!r}, "a") as f:
            f.write(json.dumps({{"lab": lab.id, "runtime": labkit_runtime, "worker": os.environ.get("PYTEST_XDIST_WORKER")}}) + "\\n")
"""


@pytest.mark.parametrize("workers", [2, 4])
def test_parallel_labs_of_one_topology_do_not_clash(workers, tmp_path):
    """`pytest -n N`: four modules on the same topology, on both runtimes, in parallel labs."""
    engine.require_images(engine.connect(), {engine.DEFAULT_IMAGE})
    out = tmp_path / "labs.jsonl"
    for name in "abcd":
        (tmp_path / f"test_{name}.py").write_text(
            textwrap.dedent(PARALLEL_TEST.format(topology=str(ROUTED / "topology.yaml"), out=str(out))))
    session = subprocess.run([sys.executable, "-m", "pytest", "-n", str(workers), "-p", "no:cacheprovider", "-q",
                              "--runtime", "netns,docker", str(tmp_path)], capture_output=True, text=True,
                             cwd=tmp_path, timeout=600)
    assert session.returncode == 0, session.stdout[-3000:] + session.stderr[-3000:]
    assert "8 passed" in session.stdout, session.stdout[-2000:]
    import json

    labs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(labs) == 8 and len({r["lab"] for r in labs}) == 8, labs
    assert len({r["worker"] for r in labs}) > 1, f"the labs did not run in parallel workers: {labs}"
    for r in labs:
        assert not state.residue(r["lab"]), r


def test_a_lab_leaves_the_host_network_as_it_found_it(runtime):
    before = hoststate.snapshot()
    with Lab.from_path(ROUTED, runtime=runtime) as lab:
        assert lab.ping("h1", "h2", timeout=5)
        during = hoststate.snapshot()
    after = hoststate.snapshot()
    assert hoststate.diff(before, after) == []
    # the lab did turn forwarding on, in r1's namespace: the snapshot would have seen it on the host
    assert lab.plan.nodes["r1"].sysctls.get("net.ipv4.ip_forward") == "1"
    assert hoststate.diff(before, during) == []  # nor while it ran


def test_the_host_snapshot_sees_a_change():
    """The comparison is not vacuous: a route added to the host is reported, and gone once removed."""
    before = hoststate.snapshot()
    subprocess.run(["ip", "route", "add", "blackhole", "198.51.100.77/32"], check=True)
    try:
        changes = hoststate.diff(before, hoststate.snapshot())
    finally:
        subprocess.run(["ip", "route", "del", "blackhole", "198.51.100.77/32"], check=True)
    assert any("routes: added" in c and "198.51.100.77" in c for c in changes), changes
    assert hoststate.diff(before, hoststate.snapshot()) == []


def test_every_bad_topology_is_refused_by_up_before_anything_exists(tmp_path, monkeypatch, capsys):
    """The whole bad-input corpus through `labkit up`: exit 1, the file's own error, and nothing made."""
    from labkit import cli

    monkeypatch.setattr(state, "STATE_DIR", tmp_path)
    before_labs = set(state.scan())
    cases = sorted((ROOT / "tests" / "errors").glob("*.yaml"))
    assert len(cases) >= 20
    for case in cases:
        assert cli.main(["up", str(case), "--sandbox", "off"]) == 1, case.name
        err = capsys.readouterr().err
        assert f"{case}:" in err or str(case) in err, (case.name, err)
    assert set(state.scan()) == before_labs and state.records() == []
    assert not list(tmp_path.iterdir())
