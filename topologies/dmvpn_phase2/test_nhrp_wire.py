"""NHRP on the wire of a phase 2 lab: the message sequence of a shortcut, read from a capture.

A capture on spoke1's mGRE interface sees what its nhrpd sends and receives (inside IPsec). The
sequence registration → traffic indication (the hub's redirect) → resolution request → reply
is asserted from the packets themselves, decoded by labkit's Scapy NHRP layer; the pcap is kept
in .labkit-artifacts/nhrp for Wireshark. This module has its own lab: the shortcut must not exist
before the capture starts.
"""

from pathlib import Path

import pytest

from labkit.probes import nhrp_wire

pytestmark = pytest.mark.runtimes("netns", reason="NHRP's wire is nhrpd's, the same on both runtimes")

HUB, S1 = ("192.0.2.1", "172.16.0.1"), ("192.0.2.2", "172.16.0.2")
H1, H2 = "10.0.1.2", "10.0.2.2"
HOLDTIME = 60  # the topology's: nhrpd refreshes its registration every third of it


def test_shortcut_message_sequence_from_a_capture(lab, wait_until):
    spoke1 = lab.node("spoke1")
    assert not spoke1.nhrp_shortcuts()
    with lab.capture("spoke1", "gre1", direction="both") as cap:
        wait_until(lambda: "Registration Reply" in [m["type"] for m in nhrp_wire.messages(cap)],
                   HOLDTIME / 3 + 15, "spoke1 to refresh its registration at the hub")
        wait_until(lambda: lab.ping("h1", "h2") and spoke1.nhrp_shortcuts(), 60,
                   "a shortcut spoke1 -> spoke2 after h1 -> h2 traffic")
        wait_until(lambda: "Resolution Reply" in [m["type"] for m in nhrp_wire.messages(cap)], 10,
                   "spoke2's resolution reply on spoke1's gre1")
    seen = nhrp_wire.messages(cap)
    kinds = [m["type"] for m in seen]
    assert nhrp_wire.in_order(kinds, ["Registration Request", "Registration Reply", "Traffic Indication",
                                      "Resolution Request", "Resolution Reply"]), kinds

    def first(kind, **fields):
        found = nhrp_wire.matching(seen, kind, **fields)
        assert found, f"no {kind} with {fields} in {seen}"
        return found[0]

    # a registration names the registering station twice: RFC 2332 5.2.3 (destination = source)
    first("Registration Request", src_nbma=S1[0], src_proto=S1[1], dst_proto=S1[1])
    first("Registration Reply", src_nbma=S1[0], src_proto=S1[1], code=0)
    first("Traffic Indication", src_nbma=HUB[0], src_proto=HUB[1], dst_proto=H1)  # back to h1's side
    request = first("Resolution Request", src_nbma=S1[0], src_proto=S1[1], dst_proto=H2)
    # the reply keeps the request's source fields and id (RFC 2332 5.2.2); code 0: success
    first("Resolution Reply", src_nbma=S1[0], src_proto=S1[1], dst_proto=H2, request_id=request["request_id"], code=0)
    # one resolution answered at once: nhrpd had no reason to ask again
    assert nhrp_wire.retries(seen, "Resolution Request", src_proto=S1[1], dst_proto=H2) <= 1, seen
    # the pcap is kept for Wireshark, and CI has tshark read it on the host afterwards
    # (`labkit nhrp --tshark`): in the TCG sandbox tshark took over 120 s just to start
    out = Path(".labkit-artifacts") / "nhrp"
    out.mkdir(parents=True, exist_ok=True)
    assert cap.write_pcap(str(out / "dmvpn_phase2-spoke1-gre1.pcap")) == len(cap.frames)
    assert len(nhrp_wire.pcap_messages(str(out / "dmvpn_phase2-spoke1-gre1.pcap"))) == len(seen)
