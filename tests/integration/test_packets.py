"""Scapy packets injected from nodes and captured in them, on both runtimes, natively on this host.

The routed lab (h1 - r1 - h2, no tunnel) runs on any kernel. Every test sends real packets
through real namespaces and containers and asserts what came back, or what went missing.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from labkit.lab import Lab
from labkit.probes.capture import Capture, compile_filter

ROUTED = Path(__file__).resolve().parents[1] / "data" / "routed"
H1, H2, R1_H1 = "10.10.1.1", "10.10.2.1", "10.10.1.2"  # the routed topology's addresses


@pytest.fixture(scope="module", params=["netns", "docker"])
def routed(request):
    lab = Lab.from_path(ROUTED, runtime=request.param)
    lab.up()
    try:
        yield lab
    finally:
        lab.down()


def test_addresses_are_the_topologys(routed):
    assert (str(routed.address_of("h1")), str(routed.address_of("h2"))) == (H1, H2)
    assert str(routed.address_of("r1", "eth1")) == R1_H1


def test_icmp_echoes_counted_and_answered_with_the_nodes_source(routed):
    result = routed.inject("h1", IP(dst=H2) / ICMP(id=0x4C4B, seq=(1, 3)), count=2)
    assert len(result.sent) == 6 and result.loss == 0.0, str(result)
    for sent, reply in result.answered:
        assert sent[IP].src == H1  # filled in from h1's routes, not from this machine's
        assert (reply[IP].src, reply[IP].dst) == (H2, H1)
        assert reply[ICMP].type == 0 and reply[ICMP].seq == sent[ICMP].seq and reply[ICMP].id == 0x4C4B
    assert all(e.rtt is not None and e.rtt >= 0 for e in result.exchanges)


def test_rate_paces_the_packets(routed):
    result = routed.inject("h1", IP(dst=H2) / ICMP(), count=5, rate=20)
    times = [e.sent_at for e in result.exchanges]
    assert result.loss == 0.0, str(result)
    assert times[-1] - times[0] >= 4 / 20 * 0.9  # five packets at 20/s span at least 0.2 s


def test_custom_ttl_expires_at_the_router(routed):
    result = routed.inject("h1", IP(dst=H2, ttl=1) / ICMP())
    [(_, reply)] = result.answered
    assert reply[IP].src == R1_H1 and reply[ICMP].type == 11  # time exceeded, from r1


def test_udp_to_a_closed_port_gets_port_unreachable(routed):
    result = routed.inject("h1", IP(dst=H2) / UDP(sport=40000, dport=33434) / Raw(b"labkit"))
    [(_, reply)] = result.answered
    assert reply[IP].src == H2 and (reply[ICMP].type, reply[ICMP].code) == (3, 3)


def test_tcp_syn_to_a_closed_port_gets_a_reset(routed):
    result = routed.inject("h1", IP(dst=H2) / TCP(sport=40001, dport=9, flags="S", seq=1000))
    [(_, reply)] = result.answered
    assert reply[TCP].flags.R and reply[TCP].ack == 1001 and reply[TCP].sport == 9


def test_loss_is_reported_not_raised(routed):
    result = routed.inject("h1", IP(dst="10.10.2.99") / ICMP(), count=3, timeout=1.0)  # nobody has .99
    assert result.loss == 1.0 and len(result.unanswered) == 3 and result.replies == []
    assert "3 sent, 0 answered, 100% loss" in str(result)


def test_ethernet_frame_from_an_interface(routed):
    result = routed.inject("h1", Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=R1_H1, psrc=H1), iface="eth0")
    [(_, reply)] = result.answered
    assert reply[ARP].op == 2 and reply[ARP].psrc == R1_H1  # r1 answers who-has for its address


def test_ethernet_frame_without_an_interface_is_refused(routed):
    with pytest.raises(ValueError, match="iface="):
        routed.inject("h1", Ether() / ARP(pdst=R1_H1))


def test_capture_with_a_kernel_filter_sees_only_what_it_asks_for(routed):
    with routed.capture("r1", "eth2", direction="out", bpf="udp dst port 5555") as cap:
        routed.inject("h1", IP(dst=H2) / UDP(dport=5555) / Raw(b"x" * 40), count=3, expect_reply=False)
        routed.inject("h1", IP(dst=H2) / ICMP())  # answered, and filtered out
        routed.inject("h1", IP(dst=H2) / UDP(dport=5556), timeout=0.5)  # another port: filtered out
    pkts = cap.packets()
    assert len(pkts) == 3, [p.summary() for p in pkts]
    assert all(p[UDP].dport == 5555 and p[IP].src == H1 and bytes(p[Raw]) == b"x" * 40 for p in pkts)


def test_capture_of_every_interface_of_a_node(routed):
    with routed.capture("r1", direction="in", bpf="icmp") as cap:
        routed.inject("h1", IP(dst=H2) / ICMP(seq=7))
    pkts = cap.packets()
    seen = {(p[IP].src, p[IP].dst, p[ICMP].type) for p in pkts}
    assert {(H1, H2, 8), (H2, H1, 0)} <= seen  # the request arrives on eth1, the reply on eth2


def test_capture_on_a_missing_interface_names_it(routed):
    with pytest.raises(Exception, match="no interface 'eth9'"):
        routed.capture("r1", "eth9")


def test_bad_filter_is_an_error(routed):
    with pytest.raises(ValueError, match="bad capture filter"):
        routed.capture("r1", "eth1", bpf="udp port banana")


def test_compiled_filter_is_a_bpf_program():
    program = compile_filter("ip proto 47", raw_ip=True)
    assert len(program) % 8 == 0 and len(program) >= 16


def test_capture_fixture_keeps_pcaps_of_failures_and_with_keep_pcaps(pytester):
    pytester.makepyfile(test_cap=textwrap.dedent(f"""
        import pytest
        from scapy.layers.inet import IP, ICMP

        pytestmark = pytest.mark.topology({str(ROUTED / 'topology.yaml')!r})

        def test_fails(lab, capture):
            capture("r1", "eth1", bpf="icmp", direction="both")
            assert lab.inject("h1", IP(dst="{H2}") / ICMP()).loss == 0.0
            assert False, "on purpose"

        def test_passes(lab, capture):
            capture("h2", "eth0", direction="both")
            assert lab.inject("h1", IP(dst="{H2}") / ICMP()).loss == 0.0
    """))
    art = pytester.path / "art"
    run = pytester.runpytest_subprocess(f"--lab-artifacts={art}", "-p", "no:cacheprovider")
    run.assert_outcomes(passed=1, failed=1)
    kept = sorted(p.relative_to(art).as_posix() for p in art.rglob("*.pcap"))
    assert kept == ["routed/pcaps/test_fails/r1-eth1.pcap"], kept
    from scapy.utils import rdpcap

    assert {p[ICMP].type for p in rdpcap(str(art / kept[0]))} == {0, 8}
    run = pytester.runpytest_subprocess(f"--lab-artifacts={art}", "--keep-pcaps", "-k", "passes")
    run.assert_outcomes(passed=1)
    assert (art / "routed/pcaps/test_passes/h2-eth0.pcap").stat().st_size > 24


def test_capture_context_stops_its_thread(routed):
    cap = routed.capture("h2", "eth0")
    assert isinstance(cap, Capture) and cap.running
    cap.stop()
    assert not cap.running and not cap._thread.is_alive()
