"""The fault API on a routed lab, on both runtimes: links, daemons, addresses (host kernel)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.errors import LabError
from labkit.lab import Lab
from labkit.wait import wait_until

ROUTED = Path(__file__).resolve().parents[1] / "data" / "routed"


@pytest.fixture(scope="module", params=["netns", "docker"])
def routed(request):
    lab = Lab.from_path(ROUTED, runtime=request.param)
    lab.up()
    yield lab
    lab.down()


def test_link_down_cuts_the_path_and_undo_restores_it(routed):
    assert routed.ping("h1", "h2")
    with routed.faults.link_down("r1", "eth2") as fault:
        assert "r1:eth2 down" in repr(fault)
        assert not routed.ping("h1", "h2", timeout=0.5)
    wait_until(lambda: routed.ping("h1", "h2", timeout=0.5), 10, "h1 to reach h2 again after r1:eth2 came back")


def test_restart_replaces_the_daemon_and_waits_until_it_serves(routed):
    def zebra_pid() -> str:
        return routed.node("r1").read_file("/run/frr/zebra.pid").strip()

    before = zebra_pid()
    routed.faults.restart("r1", "zebra")
    assert zebra_pid() != before
    assert "10.10.2.0/24" in routed.node("r1").vty("zebra", "show ip route")
    with pytest.raises(LabError, match="r1 runs no bgpd"):
        routed.faults.restart("r1", "bgpd")


def test_stopped_daemon_is_gone_until_undo(routed):
    fault = routed.faults.stop("r1", "zebra")
    assert routed.node("r1").exec("pgrep", "-x", "zebra").rc == 1
    fault.undo()
    assert routed.node("r1").exec("pgrep", "-x", "zebra").rc == 0
    assert "10.10.2.0/24" in routed.node("r1").vty("zebra", "show ip route")


def test_set_address_replaces_and_undo_restores(routed):
    with routed.faults.set_address("h2", "eth0", "10.10.2.77/24"):
        addrs = routed.node("h2").exec("ip", "-br", "-4", "addr", "show", "eth0").check().stdout
        assert "10.10.2.77/24" in addrs and "10.10.2.1/24" not in addrs
        assert routed.ping("h1", "10.10.2.77")
    addrs = routed.node("h2").exec("ip", "-br", "-4", "addr", "show", "eth0").check().stdout
    assert "10.10.2.1/24" in addrs and "10.10.2.77" not in addrs


def test_whole_node_restart_keeps_configuration_and_flushes_daemon_state(routed):
    before = routed.node("r1").read_file("/run/frr/zebra.pid").strip()
    routed.faults.restart("r1")
    assert routed.node("r1").read_file("/run/frr/zebra.pid").strip() != before
    assert routed.node("r1").exec("ip", "xfrm", "state").check().stdout.strip() == ""
    assert routed.ping("h1", "h2")  # addresses and labkit's static routes survive, as after a reboot
