"""The docker runtime on this host's kernel: a routed lab (no tunnel) in real containers.

Needs the Docker engine and the node image (``bash scripts/setup.sh`` provides both); without
them these tests error with the fix, they never skip. DMVPN on docker needs GRE and ESP, so it
runs in the VM sandbox: ``pytest topologies/dmvpn_phase2 --runtime docker``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from labkit import state
from labkit.errors import PrerequisiteError
from labkit.lab import Lab
from labkit.runtime import docker as dk
from labkit.runtime import engine
from labkit.wait import wait_until

ROUTED = Path(__file__).resolve().parents[1] / "data" / "routed"


@pytest.fixture(scope="module")
def client():
    c = engine.connect()
    engine.require_images(c, {engine.DEFAULT_IMAGE})
    return c


def containers(client, lab_id: str) -> list:
    return dk.lab_containers(client).get(lab_id, [])


@pytest.fixture(scope="module")
def routed(client):
    lab = Lab.from_path(ROUTED, runtime="docker")
    lab.up()
    yield lab
    lab.down()
    assert containers(client, lab.id) == []


def test_nodes_are_labelled_containers_without_network(routed, client):
    found = {c.labels["labkit.node"]: client.containers.get(c.id) for c in containers(client, routed.id)}
    assert set(found) == {"r1", "h1", "h2"}
    for node, c in found.items():
        assert c.name == f"{routed.id}-{node}"
        assert c.status == "running"
        host = c.attrs["HostConfig"]
        assert host["NetworkMode"] == "none"
        assert not host["Privileged"]
        assert set(host["CapAdd"]) == {"NET_ADMIN", "SYS_ADMIN"}
        owner = c.labels["labkit.owner"]
        assert owner.startswith(f"{os.getpid()}:") and dk.owner_alive(owner)
    # sysctls are set when the container is created (/proc/sys is read-only inside)
    assert found["r1"].attrs["HostConfig"]["Sysctls"]["net.ipv4.ip_forward"] == "1"
    assert routed.node("r1").read_file("/proc/sys/net/ipv4/ip_forward").strip() == "1"


def test_veths_are_wired_inside_the_containers(routed):
    addrs = routed.node("r1").exec("ip", "-br", "addr").check().stdout
    assert "10.10.1.2/24" in addrs and "10.10.2.2/24" in addrs
    path = routed.path("h1", "h2")
    assert path.reached and [h.node for h in path.hops] == ["r1", "h2"]
    assert routed.ping("h2", "h1")


def test_daemons_live_inside_the_container(routed):
    """zebra was docker-exec'd: it runs in the container's PID namespace, as the image's frr user."""
    ps = routed.node("r1").exec("ps", "-eo", "user,comm").check().stdout
    assert any(line.split() == ["frr", "zebra"] for line in ps.splitlines()), ps
    assert "C>* 10.10.2.0/24" in routed.node("r1").vty("zebra", "show ip route")


def test_exec_results_and_testinfra(routed):
    r1 = routed.node("r1")
    assert r1.exec("cat", input="hello").stdout == "hello"
    assert r1.exec("false").rc == 1
    assert r1.exec("no-such-command").rc == 127
    slow = r1.exec("sleep", "5", timeout=1)
    assert slow.rc == 124 and "timed out" in slow.stderr
    assert routed.node("h1").host().interface("eth0").addresses == ["10.10.1.1"]


def test_missing_image_is_an_error_that_names_the_fix_and_creates_nothing(client):
    lab = Lab.from_path(ROUTED, runtime="docker", image="labkit/node:no-such-tag")
    with pytest.raises(PrerequisiteError, match="labkit image build"):
        lab.up()
    assert containers(client, lab.id) == []


def _labkit(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "labkit.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def _owner(code_after_up: str) -> subprocess.Popen:
    code = ("import signal, time; from labkit.lab import Lab\n"
            f"lab = Lab.from_path({str(ROUTED)!r}, runtime='docker'); lab.up(); print(lab.id, flush=True)\n"
            + code_after_up)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def test_cleanup_reaps_the_containers_of_a_dead_owner(client, tmp_path, monkeypatch):
    monkeypatch.setattr(state, "STATE_DIR", tmp_path)
    owner = _owner("signal.pause()\n")
    lab_id = owner.stdout.readline().strip()
    owner.send_signal(signal.SIGKILL)  # no teardown ran: the containers outlive their owner
    owner.wait(timeout=30)
    assert len(containers(client, lab_id)) == 3
    assert state.scan()[lab_id]["orphaned"]
    proc = _labkit("cleanup", env={**os.environ, "LABKIT_STATE_DIR": str(tmp_path)})
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert lab_id in out
    wait_until(lambda: containers(client, lab_id) == [], 30, f"containers of {lab_id} to be removed")


def test_a_failed_bring_up_removes_its_containers(client, tmp_path):
    """r1's image has no FRR: zebra cannot start, the lab fails with the daemon's output and leaves nothing."""
    from labkit.errors import LabError
    from labkit.image import BASE_REPO, host_codename

    topo = tmp_path / "topology.yaml"
    topo.write_text((ROUTED / "topology.yaml").read_text().replace(
        "r1: {role: router}", f"r1: {{role: router, image: '{BASE_REPO}:{host_codename()}'}}"))
    lab = Lab.from_path(topo, runtime="docker")
    with pytest.raises(LabError, match="zebra on r1 exited with 127"):
        lab.up()
    assert containers(client, lab.id) == []


def test_one_session_runs_a_module_on_both_runtimes(pytester):
    """``--runtime netns,docker``: the same tests, fixtures and probes, once per runtime."""
    pytester.makepyfile(test_both=f"""
        import pytest
        pytestmark = pytest.mark.topology({str(ROUTED / 'topology.yaml')!r})

        def test_path(lab, labkit_runtime):
            assert lab.runtime.name == labkit_runtime
            assert [h.node for h in lab.path("h1", "h2").hops] == ["r1", "h2"]
    """)
    result = pytester.runpytest_subprocess("-v", "--runtime", "netns,docker")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_path?netns? PASSED*", "*test_path?docker? PASSED*"])
    bad = pytester.runpytest_subprocess("--runtime", "lxc")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*unknown runtime lxc; use netns or docker*"])


def test_cli_up_status_exec_down_on_docker(client, tmp_path):
    env = {**os.environ, "LABKIT_STATE_DIR": str(tmp_path)}

    def labkit(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "labkit.cli", *args], capture_output=True, text=True,
                              timeout=180, env=env)

    up = labkit("up", str(ROUTED), "--runtime", "docker")
    assert up.returncode == 0, up.stderr
    lab_id = up.stdout.split()[1]
    try:
        # the lab outlives `labkit up`, and cleanup does not take it for an orphan
        assert len(containers(client, lab_id)) == 3
        assert lab_id not in labkit("cleanup").stdout
        status = labkit("status")
        assert lab_id in status.stdout and "(docker, 3 namespaces)" in status.stdout, status.stdout
        ping = labkit("exec", "h1", "--", "ping", "-c", "1", "-W", "5", "10.10.2.1")
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert labkit("exec", "h1", "--", "false").returncode == 1
    finally:
        down = labkit("down", lab_id)
    assert down.returncode == 0, down.stderr
    assert containers(client, lab_id) == []


def test_a_module_limited_to_netns_is_deselected_on_docker_not_skipped(pytester):
    pytester.makepyfile(test_only_netns=f"""
        import pytest
        pytestmark = [pytest.mark.topology({str(ROUTED / 'topology.yaml')!r}),
                      pytest.mark.runtimes("netns", reason="timer-bound lab")]

        def test_path(lab):
            assert lab.runtime.name == "netns"
    """)
    result = pytester.runpytest_subprocess("-v", "--runtime", "netns,docker", "--forbid-skips")
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(["*1 test(s) of test_only_netns not run on docker*(timer-bound lab)*"])
