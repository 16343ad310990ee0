"""The netns runtime on this host (root, no GRE/ESP needed): nodes, wires, addresses, commands,
files, a real traced path, and a teardown that leaves nothing behind."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from labkit import state
from labkit.errors import WaitTimeout
from labkit.exec import CommandResult
from labkit.expand import segment_key
from labkit.expand.plan import NodePlan, RoutePlan, WirePlan
from labkit.probes import path
from labkit.runtime import kernel, ns
from labkit.runtime.netns import NetnsRuntime
from labkit.wait import retry, wait_until

# Not root: the runtime raises LabError naming the fix; these tests fail with it rather than skip.

iface = ipaddress.IPv4Interface
LAN = segment_key("lan")


def host_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def lab_id() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def build_segment_lab(rt: NetnsRuntime) -> dict[str, int]:
    """Nodes a and b on one bridged segment: a 10.0.0.1/24, b 10.0.0.2/24."""
    for name in ("a", "b", LAN):
        rt.create(name)
    kernel.wire_all(rt.pids, [WirePlan("a", "eth0", LAN, "p0", segment="lan"),
                              WirePlan("b", "eth0", LAN, "p1", segment="lan")])
    kernel.configure_node(rt.pid("a"), NodePlan("a", "host", addresses={"eth0": [iface("10.0.0.1/24")]}))
    kernel.configure_node(rt.pid("b"), NodePlan("b", "host", addresses={"eth0": [iface("10.0.0.2/24")]}))
    return rt.pids


def wait_carrier(rt: NetnsRuntime, node: str, ifname: str = "eth0") -> None:
    """Wait until the kernel reports the link's operstate UP (carrier is set asynchronously)."""
    def operstate():
        for line in rt.exec(node, ["ip", "-br", "link", "show", "dev", ifname]).stdout.splitlines():
            return line.split()[1]

    wait_until(lambda: operstate() == "UP", timeout=10, desc=f"{node}:{ifname} operstate UP", interval=0.05,
               state=operstate)


@pytest.fixture(scope="module")
def lab():
    rt = NetnsRuntime(lab_id())
    try:
        build_segment_lab(rt)
        wait_carrier(rt, "a")
        wait_carrier(rt, "b")
        yield rt
    finally:
        rt.destroy()


# -- commands and files --------------------------------------------------------------------

def test_exec_returns_command_result(lab):
    result = lab.exec("a", ["ip", "-br", "addr"])
    assert isinstance(result, CommandResult)
    assert (result.node, result.argv, result.rc) == ("a", ("ip", "-br", "addr"), 0)
    fields = {line.split()[0].split("@")[0]: line.split() for line in result.stdout.splitlines()}
    assert set(fields) == {"lo", "eth0"}  # nothing of the host leaks into the node
    assert "10.0.0.1/24" in fields["eth0"] and fields["eth0"][1] == "UP"
    assert result.check() is result


def test_exec_runs_in_the_node(lab):
    assert lab.exec("b", ["hostname"]).stdout.strip() == "b"
    env = lab.exec("b", ["sh", "-c", "echo $LABKIT_NODE $LABKIT_LAB"]).stdout.split()
    assert env == ["b", lab.lab_id]
    assert lab.exec("a", ["cat"], input="through stdin").stdout == "through stdin"


def test_exec_failures_are_results(lab):
    missing = lab.exec("a", ["labkit-no-such-binary"])
    assert missing.rc == 127 and not missing.ok
    failed = lab.exec("a", ["sh", "-c", "echo oops >&2; exit 3"])
    assert (failed.rc, failed.stderr) == (3, "oops\n")


def test_segment_connects_the_nodes(lab):
    lab.exec("a", ["ping", "-c", "1", "-W", "5", "10.0.0.2"]).check()


def test_write_and_read_file_are_private_to_the_node(lab):
    lab.write_file("a", "/run/labkit/probe/note.txt", "hello from a\n")
    assert lab.read_file("a", "/run/labkit/probe/note.txt") == "hello from a\n"
    assert lab.exec("a", ["cat", "/run/labkit/probe/note.txt"]).stdout == "hello from a\n"
    assert lab.exec("b", ["cat", "/run/labkit/probe/note.txt"]).rc != 0  # b has its own /run
    assert not Path("/run/labkit/probe/note.txt").exists()  # and so has the host
    assert ns.read_marker(lab.pid("a")) == {"lab": lab.lab_id, "node": "a", "owner": os.getpid(), "runtime": "netns"}


# -- path probe ----------------------------------------------------------------------------

def test_trace_reaches_the_neighbour(lab):
    owners = {ipaddress.IPv4Address("10.0.0.2"): "b"}
    result = path.trace(lab.pid("a"), "a", "10.0.0.2", owner_of=owners.get, max_hops=3, wait=2.0)
    assert result.reached, str(result)
    assert [(h.ttl, str(h.address), h.node) for h in result.hops] == [(1, "10.0.0.2", "b")]
    assert result.nodes == ("b",) and str(result) == "a -> b"


def test_trace_through_a_router():
    rt = NetnsRuntime(lab_id())
    try:
        for name in ("a", "r", "b"):
            rt.create(name)
        kernel.wire_all(rt.pids, [WirePlan("a", "eth0", "r", "eth0"), WirePlan("r", "eth1", "b", "eth0")])
        default = lambda gw: [RoutePlan(ipaddress.IPv4Network("0.0.0.0/0"), ipaddress.IPv4Address(gw))]  # noqa: E731
        kernel.configure_node(rt.pid("a"), NodePlan("a", "host", addresses={"eth0": [iface("10.1.0.2/24")]},
                                                    routes=default("10.1.0.1")))
        kernel.configure_node(rt.pid("b"), NodePlan("b", "host", addresses={"eth0": [iface("10.2.0.2/24")]},
                                                    routes=default("10.2.0.1")))
        kernel.configure_node(rt.pid("r"), NodePlan("r", "router", sysctls={"net.ipv4.ip_forward": "1"}, addresses={
            "eth0": [iface("10.1.0.1/24")], "eth1": [iface("10.2.0.1/24")]}))
        for node, ifname in (("a", "eth0"), ("r", "eth0"), ("r", "eth1"), ("b", "eth0")):
            wait_carrier(rt, node, ifname)
        owners = {"10.1.0.1": "r", "10.2.0.2": "b"}
        result = path.trace(rt.pid("a"), "a", "10.2.0.2", owner_of=lambda a: owners.get(str(a)), max_hops=4, wait=2.0)
        assert result.reached, str(result)
        assert [(h.ttl, str(h.address)) for h in result.hops] == [(1, "10.1.0.1"), (2, "10.2.0.2")]
        assert result.crosses("r") and str(result) == "a -> r -> b"
        assert rt.exec("r", ["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout == "1\n"  # the node's own sysctl
    finally:
        rt.destroy()


# -- teardown ------------------------------------------------------------------------------

def test_destroy_leaves_nothing_behind():
    links_before = host_links()
    rt = NetnsRuntime(lab_id())
    pids = build_segment_lab(rt)
    daemon = rt.start("a", ["sleep", "600"])  # a process inside a node dies with it
    assert rt.lab_id in state.scan()
    assert set(state.scan()[rt.lab_id]["holders"]) == {"a", "b", LAN}

    rt.destroy()

    assert daemon.poll() is not None
    assert [p for p in pids.values() if Path(f"/proc/{p}").exists()] == []
    assert rt.lab_id not in state.scan()
    assert host_links() - links_before == set()
    assert rt.pids == {}
    rt.destroy()  # safe to call twice


# -- bounded waiting -----------------------------------------------------------------------

def test_wait_until_returns_the_truthy_value():
    calls = iter([0, None, "", "ready"])
    assert wait_until(lambda: next(calls), timeout=5, desc="a value", interval=0) == "ready"


def test_wait_until_timeout_names_what_was_awaited():
    with pytest.raises(WaitTimeout) as info:
        wait_until(lambda: False, timeout=0.05, desc="spoke1 registered at hub", interval=0.01,
                   state=lambda: "cache: empty")
    message = str(info.value)
    assert message.startswith("Timeout after 0.05s waiting for: spoke1 registered at hub")
    assert "last state: cache: empty" in message
    assert isinstance(info.value, AssertionError)


def test_wait_until_reports_the_last_error():
    def probe():
        raise ConnectionRefusedError("vty socket not there yet")

    with pytest.raises(WaitTimeout, match=r"last error: ConnectionRefusedError: vty socket not there yet"):
        wait_until(probe, timeout=0.05, desc="bgpd serving", interval=0.01)


def test_retry_reruns_until_the_assertion_holds():
    attempts = []

    @retry(timeout=5, interval=0)
    def check():
        attempts.append(1)
        assert len(attempts) >= 3, f"only {len(attempts)} attempts"
        return "done"

    assert check() == "done" and len(attempts) == 3


def test_retry_timeout_keeps_the_last_failure():
    @retry(timeout=0.05, interval=0.01, desc="route to 10.0.2.0/24 on spoke1")
    def check():
        assert False, "no route yet"

    with pytest.raises(WaitTimeout) as info:
        check()
    assert str(info.value).startswith("Timeout after 0.05s waiting for: route to 10.0.2.0/24 on spoke1")
    assert "last failure: no route yet" in str(info.value)


def test_retry_does_not_swallow_other_errors():
    @retry(timeout=5, interval=0)
    def check():
        raise KeyError("boom")

    with pytest.raises(KeyError):
        check()
